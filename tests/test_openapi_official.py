"""Our generated OpenAPI document against the official RealWorld one (shared/realworld/openapi.yml),
path by path: the same paths and methods, parameters, tags and security, the same required
fields in request and success bodies, and every official status code present in ours. The
official paths are relative to its server URL, which ends in /api; ours include the /api."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from service.app import api_endpoints
from service.openapi import build_document

ROOT = Path(__file__).resolve().parents[1]


def official_document() -> dict[str, Any]:
    """shared/ lies beside the repository (CI, the main checkout) or further up (worktrees)."""
    for folder in ROOT.parents:
        candidate = folder / "shared" / "realworld" / "openapi.yml"
        if candidate.is_file():
            return yaml.safe_load(candidate.read_text())
    pytest.fail(f"shared/realworld/openapi.yml not found beside {ROOT} or above it")


class Resolver:
    """Follows local $refs of one document."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def __call__(self, node: Any) -> Any:
        seen = set()
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/") and ref not in seen, ref
            seen.add(ref)
            node = self.document
            for part in ref[2:].split("/"):
                node = node[part]
        return node


def _non_null(schema: dict[str, Any], resolve: Resolver) -> dict[str, Any]:
    schema = resolve(schema)
    branches = schema.get("anyOf") if isinstance(schema, dict) else None
    if branches:
        rest = [resolve(branch) for branch in branches if resolve(branch) != {"type": "null"}]
        if len(rest) == 1:
            return rest[0]
    return schema


def admits_null(schema: Any, resolve: Resolver) -> bool:
    """Whether a schema accepts null: `type: [..., "null"]`, `nullable: true` or a null branch."""
    schema = resolve(schema)
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind) or schema.get("nullable") is True:
        return True
    return any(admits_null(branch, resolve) for branch in [*schema.get("anyOf", ()), *schema.get("oneOf", ())])


def compare_required(where: str, theirs: Any, ours: Any, t: Resolver, o: Resolver) -> list[str]:
    """The required fields of two schemas, level by level, through properties and array items;
    and every field the official schema lets be null, ours lets be null too."""
    differences = []
    if admits_null(theirs, t) and not admits_null(ours, o):
        differences.append(f"{where}: official admits null, ours does not")
    theirs, ours = _non_null(theirs, t), _non_null(ours, o)
    if not isinstance(theirs, dict) or not isinstance(ours, dict):
        return differences
    if theirs.get("type") == "object" or "properties" in theirs:
        wanted, have = set(theirs.get("required", ())), set(ours.get("required", ()))
        if wanted - have:
            differences.append(f"{where}: official requires {sorted(wanted - have)}, ours does not")
        if have - wanted:
            differences.append(f"{where}: ours requires {sorted(have - wanted)}, the official does not")
        missing = set(theirs.get("properties", {})) - set(ours.get("properties", {}))
        if missing:
            differences.append(f"{where}: properties {sorted(missing)} missing from ours")
        for name, schema in theirs.get("properties", {}).items():
            if name in ours.get("properties", {}):
                differences += compare_required(f"{where}.{name}", schema, ours["properties"][name], t, o)
    if theirs.get("type") == "array" and "items" in theirs:
        differences += compare_required(f"{where}[]", theirs["items"], ours.get("items", {}), t, o)
    return differences


def _json_schema(body: dict[str, Any] | None, resolve: Resolver) -> dict[str, Any] | None:
    body = resolve(body) if body is not None else None
    if not body or "application/json" not in body.get("content", {}):
        return None
    return body["content"]["application/json"]["schema"]


def _parameters(operation: dict[str, Any], resolve: Resolver) -> set[tuple[str, str]]:
    return {(p["in"], p["name"]) for p in (resolve(p) for p in operation.get("parameters", ()))}


def _security(operation: dict[str, Any]) -> str:
    options = operation.get("security")
    if not options:
        return "none"
    return "optional" if {} in options else "required"


def compare_documents(theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    t, o = Resolver(theirs), Resolver(ours)
    prefix = urlsplit(theirs["servers"][0]["url"]).path.rstrip("/")
    differences = []
    their_paths = {prefix + path: item for path, item in theirs["paths"].items()}
    for path in sorted(set(ours["paths"]) - set(their_paths)):
        differences.append(f"{path}: ours only")
    for path, item in their_paths.items():
        if path not in ours["paths"]:
            differences.append(f"{path}: missing from ours")
            continue
        methods = {m for m in item if m in ("get", "put", "post", "delete", "patch")}
        our_methods = set(ours["paths"][path])
        for method in sorted(our_methods - methods):
            differences.append(f"{method.upper()} {path}: ours only")
        for method in sorted(methods):
            where = f"{method.upper()} {path}"
            if method not in our_methods:
                differences.append(f"{where}: missing from ours")
                continue
            official, mine = item[method], ours["paths"][path][method]
            if official.get("tags") != mine.get("tags"):
                differences.append(f"{where}: tags {official.get('tags')} official, {mine.get('tags')} ours")
            if _parameters(official, t) != _parameters(mine, o):
                theirs_, ours_ = sorted(_parameters(official, t)), sorted(_parameters(mine, o))
                differences.append(f"{where}: parameters {theirs_} official, {ours_} ours")
            if _security(official) == "required" and _security(mine) != "required":
                differences.append(f"{where}: the official requires the Token, ours has it {_security(mine)}")
            if _security(official) == "none" and _security(mine) == "required":
                differences.append(f"{where}: ours requires the Token, the official does not")
            missing = set(official["responses"]) - set(mine["responses"])
            if missing:
                differences.append(
                    f"{where}: official statuses {sorted(missing)} missing from ours {sorted(mine['responses'])}"
                )
            their_body, our_body = official.get("requestBody"), mine.get("requestBody")
            if (their_body is None) != (our_body is None):
                differences.append(f"{where}: request body {'official' if their_body else 'ours'} only")
            elif their_body is not None:
                differences += compare_required(
                    f"{where} request", _json_schema(their_body, t), _json_schema(our_body, o), t, o
                )
            for status, response in official["responses"].items():
                if status not in mine["responses"]:
                    continue
                their_schema = _json_schema(response, t)
                our_schema = _json_schema(mine["responses"][status], o)
                if status.startswith("2"):
                    if (their_schema is None) != (our_schema is None):
                        differences.append(f"{where} {status}: JSON body {'official' if their_schema else 'ours'} only")
                    elif their_schema is not None:
                        differences += compare_required(f"{where} {status}", their_schema, our_schema, t, o)
                # An error answers the RealWorld shape {"errors": {...}}; the official document
                # names its keys only by example ("body"), ours are the failing fields.
                elif our_schema is None or "errors" not in o(our_schema).get("required", ()):
                    differences.append(f"{where} {status}: ours has no JSON error body with `errors`")
    return differences


def test_every_realworld_path_matches_the_official_document():
    differences = compare_documents(official_document(), build_document(api_endpoints()))
    assert not differences, "our OpenAPI document differs from the official one:\n" + "\n".join(differences)


def test_the_comparison_reports_differences():
    """The comparison is no rubber stamp: a changed copy of ours is caught, readably."""
    theirs, ours = official_document(), build_document(api_endpoints())
    del ours["paths"]["/api/tags"]
    del ours["paths"]["/api/user"]["put"]["responses"]["401"]
    ours["components"]["schemas"]["Profile"]["required"].remove("following")
    ours["components"]["schemas"]["Profile"]["properties"]["bio"] = {"type": "string"}
    differences = compare_documents(theirs, ours)
    assert "GET /api/profiles/{username} 200.profile.bio: official admits null, ours does not" in differences
    assert "/api/tags: missing from ours" in differences
    assert any(line.startswith("PUT /api/user: official statuses ['401'] missing") for line in differences)
    assert "GET /api/profiles/{username} 200.profile: official requires ['following'], ours does not" in differences
