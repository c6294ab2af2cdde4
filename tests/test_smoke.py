from tests.helpers import auth, create_article, register


async def test_register_and_article(client):
    user = await register(client)
    article = await create_article(client, user["token"], tags=["training", "dragons"])
    assert article["tagList"] == ["dragons", "training"]
    r = await client.get("/api/articles", headers=auth(user["token"]))
    body = await r.json()
    assert r.status == 200, body
    assert body["articlesCount"] == 1
