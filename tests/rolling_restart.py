"""Two instances of the service behind a real nginx, a bounded keep-alive load, and rolling restarts.

Used by tests/test_rolling_restart.py, and runnable alone to measure, on a throwaway embedded
PostgreSQL: `.venv/bin/python -m tests.rolling_restart --restarts 10` prints the failed requests
of each restart. nginx runs as a plain child process (its own prefix, configuration, pid file and
logs in a temporary folder, `daemon off`), as root or not."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from tests.gunicorn_process import WAIT, Gunicorn, eventually, free_port

# Ports of their own, apart from the other gunicorn tests' (an instance's port is free for a few
# seconds at each restart, and must not be taken meanwhile); CONDUIT_NGINX_TEST_PORTS moves them.
PORTS = os.environ.get("CONDUIT_NGINX_TEST_PORTS", "18140-18159")

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)), None
)

# The reference configuration of the README ("Behind a load balancer"), with this test's paths and
# ports filled in. The upstream part is the usual one, with nginx's defaults: static servers, round
# robin, a pool of idle upstream connections, HTTP/1.1 to the upstream without `Connection: close`;
# and a shared zone, so that nginx's workers agree on which server is down (README).
NGINX_UPSTREAM = """\
upstream conduit {{
    zone conduit 64k;
    server 127.0.0.1:{port_a};
    server 127.0.0.1:{port_b};
    keepalive 32;
}}

server {{
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass http://conduit;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
}}
"""

# What only a test needs: a process of its own, its files in its own folder.
NGINX_CONF = """\
daemon off;
worker_processes 2;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;

{upstream}}}
"""


class Nginx:
    def __init__(self, folder: Path, port_a: int, port_b: int) -> None:
        assert NGINX is not None
        self.folder = folder
        self.port = free_port(PORTS)
        upstream = NGINX_UPSTREAM.format(port_a=port_a, port_b=port_b, port=self.port)
        indented = "".join(f"    {line}\n" if line else "\n" for line in upstream.splitlines())
        (folder / "nginx.conf").write_text(NGINX_CONF.format(folder=folder, upstream=indented))
        # As root, nginx's workers run as nobody: they must reach the folder it makes its temp dirs in.
        os.chmod(folder, 0o755)
        self._stderr = open(folder / "stderr.log", "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        paths = (self.folder / "error.log", self.folder / "stderr.log")
        return "\n".join(path.read_text(errors="replace") for path in paths if path.exists())

    async def wait_serving(self) -> None:
        async def up() -> bool:
            assert self.process.poll() is None, f"nginx exited:\n{self.log()}"
            try:
                async with aiohttp.ClientSession() as session, session.get(self.url + "/livez") as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(up, "nginx to answer /livez")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight, then exit
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(WAIT)
        self._stderr.close()


@dataclass
class Load:
    """Keep-alive clients through nginx: 80% reads, 20% comments written."""

    url: str
    token: str
    slug: str
    clients: int = 16
    rate: float = 40.0  # requests per second per client, at most: a bounded load
    restart: int = 0  # the restart in progress, to which a failure is counted
    resets: Counter[int] = field(default_factory=Counter)  # nginx's upstream errors, retried or not
    sent: Counter[int] = field(default_factory=Counter)
    failed: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    written: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _client(self, number: int) -> None:
        rng = random.Random(number)
        headers = {"Authorization": f"Token {self.token}"}
        article = f"/api/articles/{self.slug}"
        path = article + "/comments"
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        connector = aiohttp.TCPConnector(limit=1)  # one keep-alive connection per client
        async with aiohttp.ClientSession(self.url, connector=connector) as session:
            while not self._stop.is_set():
                restart = self.restart
                write = rng.random() < 0.2
                try:
                    if write:
                        body = {"comment": {"body": f"client {number} restart {restart}"}}
                        async with session.post(path, json=body, headers=headers) as response:
                            await response.read()
                            ok = response.status == 201
                            outcome = f"POST {response.status}"
                    else:
                        async with session.get(article) as response:
                            await response.read()
                            ok = response.status == 200
                            outcome = f"GET {response.status}"
                except (aiohttp.ClientError, TimeoutError) as error:
                    ok, outcome = False, f"{'POST' if write else 'GET'} {error!r}"
                self.sent[restart] += 1
                if ok:
                    self.written += write
                else:
                    self.failed[restart] += 1
                    self.failures.append(f"restart {restart}: {outcome}")
                next_at = max(next_at + 1 / self.rate, loop.time())
                await asyncio.sleep(next_at - loop.time())

    async def run(self) -> None:
        await asyncio.gather(*(self._client(number) for number in range(self.clients)))

    def stop(self) -> None:
        self._stop.set()


async def author_and_article(url: str) -> tuple[str, str]:
    async with aiohttp.ClientSession(url) as session:
        user = {"username": "loader", "email": "loader@example.com", "password": "password123"}
        async with session.post("/api/users", json={"user": user}) as r:
            assert r.status == 201, await r.text()
            token: str = (await r.json())["user"]["token"]
        article = {"title": "Under load", "description": "d", "body": "b", "tagList": []}
        async with session.post(
            "/api/articles", json={"article": article}, headers={"Authorization": f"Token {token}"}
        ) as r:
            assert r.status == 201, await r.text()
            return token, (await r.json())["article"]["slug"]


def instance(database_url: str, port: int | None = None, **env: str) -> Gunicorn:
    """One instance as an operator runs it: production settings, 2 workers, SHUTDOWN_DELAY=2."""
    settings = {
        "APP_ENV": "production",
        "SHUTDOWN_DELAY": "2",
        "DB_POOL_MIN_SIZE": "2",
        "DB_POOL_MAX_SIZE": "5",
        "DB_STATEMENT_TIMEOUT": "5",
        **env,
    }
    settings["PORT"] = str(free_port(PORTS) if port is None else port)
    return Gunicorn(database_url, **settings).start()


async def wait_ready(server: Gunicorn) -> None:
    """Listening (this instance, not another process that took its port), and ready."""
    await server.wait_for_lines(r"Listening at: " + re.escape(server.url) + " ")

    async def ready() -> bool:
        try:
            async with aiohttp.ClientSession() as session, session.get(server.url + "/readyz") as response:
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False

    await eventually(ready, "/readyz 200\n" + server.log())


ACCESS_LINE = r'"route":'
# nginx's error log lines for a request lost on an upstream connection (not a refused connect,
# which it retries on the other server whatever the method)
UPSTREAM_LOST = re.compile(r"recv\(\) failed|prematurely closed|reset by peer|broken pipe")


def upstream_lost(nginx: Nginx, offset: int) -> tuple[int, int]:
    """How many requests nginx lost on an upstream connection since `offset` of its error log."""
    path = nginx.folder / "error.log"
    text = path.read_bytes()[offset:].decode(errors="replace") if path.exists() else ""
    return sum(1 for line in text.splitlines() if UPSTREAM_LOST.search(line)), offset + len(text.encode())


async def rolling_restarts(
    database_url: str, folder: Path, restarts: int, report: bool = False, **env: str
) -> tuple[Load, list[int]]:
    """Start 2 instances and nginx, put the load on, restart the instances in turn `restarts`
    times (SIGTERM, exit 0, start again, back in nginx's rotation), and return the load's
    record and each stopped instance's exit code."""
    servers: list[Gunicorn] = []
    nginx: Nginx | None = None
    codes: list[int] = []
    try:
        for _ in range(2):  # one after the other: each takes the first free port
            servers.append(instance(database_url, None, **env))
            await wait_ready(servers[-1])
        nginx = Nginx(folder, servers[0].port, servers[1].port)
        await nginx.wait_serving()
        token, slug = await author_and_article(nginx.url)
        load = Load(nginx.url, token, slug)
        running = asyncio.create_task(load.run())
        try:
            for server in servers:  # both in rotation before the first stop
                await server.wait_for_lines(ACCESS_LINE, count=50)
            _, offset = upstream_lost(nginx, 0)
            for number in range(1, restarts + 1):
                started = time.monotonic()
                load.restart = number
                old = servers[(number - 1) % 2]
                old.signal(signal.SIGTERM)
                codes.append(await old.wait_exit(timeout=60))
                old.close()
                stopped = time.monotonic()
                new = servers[(number - 1) % 2] = instance(database_url, old.port, **env)
                await wait_ready(new)
                # nginx sends it requests again (it takes a server it saw refuse a connection back
                # after fail_timeout): only then may the other instance stop.
                await new.wait_for_lines(ACCESS_LINE, count=50, timeout=60)
                load.resets[number], offset = upstream_lost(nginx, offset)
                if report:
                    print(
                        f"restart {number}: exit {codes[-1]}, {load.failed[number]} failed of {load.sent[number]},"
                        f" {load.resets[number]} lost upstream by nginx;"
                        f" stop {stopped - started:.1f}s, back in rotation after {time.monotonic() - stopped:.1f}s",
                        flush=True,
                    )
            load.restart = restarts + 1
        finally:
            load.stop()
            await running
        return load, codes
    finally:
        if nginx is not None:
            nginx.close()
        for server in servers:
            server.close()


def main() -> None:
    from service.embedded import EmbeddedPostgres
    from service.migrate import apply_migrations

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--restarts", type=int, default=10)
    args = parser.parse_args()
    assert NGINX is not None, "nginx is not installed"

    with tempfile.TemporaryDirectory(prefix="conduit-rolling-") as scratch:
        postgres = EmbeddedPostgres(Path(scratch) / "data", durable=False)
        dsn = postgres.start()

        async def measure() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()
            folder = Path(scratch) / "nginx"
            folder.mkdir()
            began = time.monotonic()
            try:
                load, codes = await rolling_restarts(dsn, folder, args.restarts, report=True)
            finally:
                errors = (folder / "error.log").read_text(errors="replace") if (folder / "error.log").exists() else ""
            print(f"{args.restarts} restarts in {time.monotonic() - began:.0f}s; exit codes {codes}")
            print("failed per restart:", [load.failed[n] for n in range(1, args.restarts + 1)])
            print("lost upstream by nginx per restart:", [load.resets[n] for n in range(1, args.restarts + 1)])
            print(f"requests {sum(load.sent.values())}, comments written {load.written}")
            for failure in load.failures[:40]:
                print("  ", failure)
            print("nginx error.log:\n" + "\n".join(errors.splitlines()[-40:]))

        try:
            asyncio.run(measure())
        finally:
            postgres.destroy()


if __name__ == "__main__":
    main()
