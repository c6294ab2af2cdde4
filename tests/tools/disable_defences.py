"""Take out one security defence at a time, run the tests meant to catch it, put it back.

Prints CAUGHT (the tests failed, as they must) or MISSED for each defence. From the repository:

    .venv/bin/python tests/tools/disable_defences.py [name-substring ...]

It edits files in place and restores each one afterwards; run it on a clean work tree.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

# (defence, file, text that implements it, text that disables it, the tests that must then fail)
DEFENCES = [
    (
        "server header",
        "service/security.py",
        "headers.popall(hdrs.SERVER, None)",
        "pass",
        "tests/test_security_headers.py -k server",
    ),
    (
        "nosniff",
        "service/security.py",
        'headers["X-Content-Type-Options"] = "nosniff"',
        "pass",
        "tests/test_security_headers.py -k 'nosniff or stream'",
    ),
    (
        "cors any origin",
        "service/security.py",
        "return self.any or origin.lower() in self.origins",
        "return True",
        "tests/test_security_headers.py -k 'another_origin or production or only_for_allowed'",
    ),
    (
        "cors preflight",
        "service/security.py",
        "    if not is_preflight(request):\n        return await handler(request)\n    missing",
        "    return await handler(request)\n    missing",
        "tests/test_security_headers.py -k preflight",
    ),
    (
        "nul path",
        "schemas/base.py",
        'Slug = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9-]+$")',
        "Slug = Annotated[str, Field(min_length=1, max_length=100)",
        "tests/test_security_bounds.py -k nul",
    ),
    (
        "nul path (fuzz)",
        "schemas/base.py",
        'Slug = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9-]+$")',
        "Slug = Annotated[str, Field(min_length=1, max_length=100)",
        "tests/test_security_fuzz.py",
    ),
    (
        "413 content-length",
        "service/routing.py",
        "if request.content_length is not None and request.content_length > limit:",
        "if False:",
        "tests/test_security_bounds.py -k before_it_is_read",
    ),
    (
        "413 chunked json",
        "service/errors.py",
        'if error.status < 400 or error.content_type == "application/json":',
        'if error.status < 400 or error.status == 413 or error.content_type == "application/json":',
        "tests/test_security_bounds.py -k chunked",
    ),
    (
        "title max",
        "schemas/base.py",
        "Title = Annotated[str, text(200)]",
        "Title = Annotated[str, text(100_000)]",
        "tests/test_security_bounds.py -k article.title",
    ),
    (
        "tag count",
        "schemas/articles.py",
        "tag_list: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)",
        "tag_list: list[Tag] = Field(default_factory=list)",
        "tests/test_security_bounds.py -k tag_list",
    ),
    (
        "limit clamp",
        "schemas/articles.py",
        "limit: int = Field(20, ge=1, le=MAX_LIMIT",
        "limit: int = Field(20, ge=1",
        "'tests/test_security_bounds.py::test_page_and_filter_bounds[limit=101-limit]'",
    ),
    (
        "offset floor",
        "schemas/articles.py",
        "offset: int = Field(0, ge=0, le=2**31 - 1)",
        "offset: int = Field(0)",
        "'tests/test_security_bounds.py::test_page_and_filter_bounds[offset=-1-offset]'",
    ),
    (
        "token algorithm",
        "service/auth.py",
        "algorithms=[ALGORITHM],",
        'algorithms=[ALGORITHM, "HS512"],',
        "tests/test_security_tokens.py -k HS512",
    ),
    (
        "token expiry",
        "service/auth.py",
        "if issued > now or not_before > now or expires <= now:",
        "if issued > now or not_before > now:",
        "tests/test_security_tokens.py -k 'expired or no_exp'",
    ),
    (
        "token nbf",
        "service/auth.py",
        "if issued > now or not_before > now or expires <= now:",
        "if issued > now or expires <= now:",
        "'tests/test_security_tokens.py::test_defective_token_is_401[not yet valid]'",
    ),
    (
        "token sub range",
        "service/auth.py",
        "    if not 0 < user_id < 2**63:",
        "    if False:",
        "tests/test_security_tokens.py -k range",
    ),
    (
        "deleted user",
        "service/routing.py",
        "if user is not None and endpoint.verify_user:",
        "if False:",
        "tests/test_security_tokens.py -k deleted",
    ),
    (
        "article author",
        "service/handlers/articles.py",
        '    if row["author_id"] != user_id:\n        raise forbidden("article")\n',
        "",
        "tests/test_security_permissions.py -k only_the_author",
    ),
    (
        "comment author",
        "service/handlers/comments.py",
        '    if row["author_id"] != current_user(request).id:\n        raise forbidden("comment")\n',
        "",
        "tests/test_security_permissions.py -k only_the_author",
    ),
    (
        "generic 500",
        "service/errors.py",
        '        return json_error(500, {"server": ["internal error"]}, request)',
        '        return web.json_response({"errors": {"server": [repr(error)]}}, status=500)',
        "tests/test_security_leaks.py -k generic_500",
    ),
    (
        "500 log names request",
        "service/errors.py",
        'log.exception("unhandled error on %s %s (request %s)", request.method, request.path, request_id)',
        'log.exception("unhandled error on %s %s", request.method, request.path)',
        "tests/test_security_leaks.py -k generic_500",
    ),
    (
        "dummy hash verify",
        "service/auth.py",
        "        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None",
        "        return password_hash is not None and _hasher.verify(password_hash, password)",
        "tests/test_security_leaks.py -k same_work",
    ),
    (
        "login refuse",
        "service/limits.py",
        "    if blocked:\n",
        "    if False:\n",
        "tests/test_security_login.py -k 'per_account or per_address'",
    ),
    (
        "xff trusted only",
        "service/limits.py",
        "    if not trusted or not _is_trusted(peer, trusted):\n        return peer\n",
        "",
        "tests/test_security_login.py -k ignored_unless",
    ),
    (
        "xff right-most",
        "service/limits.py",
        "    for entry in reversed(forwarded):",
        "    for entry in forwarded:",
        "tests/test_security_login.py -k behind_a_trusted",
    ),
    (
        "xff must be ip",
        "service/limits.py",
        "        address = _ip(entry)\n",
        "        address = entry or None\n",
        "tests/test_security_login.py -k garbage",
    ),
    (
        "success not a failure",
        "sql/queries/users.sql",
        "DELETE FROM login_failures WHERE key = $1 OR id = ANY($2::bigint[]);",
        "DELETE FROM login_failures WHERE key = $1 AND $2::bigint[] IS NOT NULL;",
        "tests/test_security_login.py -k not_failures",
    ),
    (
        "dev secret in prod",
        "service/settings.py",
        "            if self.jwt_secret == DEV_JWT_SECRET:",
        "            if False:",
        "tests/test_security_settings.py",
    ),
    (
        "secret length",
        "service/settings.py",
        "        if self.jwt_secret is not None and len(self.jwt_secret) < MIN_JWT_SECRET_LENGTH:",
        "        if False:",
        "tests/test_security_settings.py",
    ),
    (
        "hash stays in the database",
        "sql/queries/users.sql",
        "SELECT id, username, email, bio, image FROM users WHERE id = $1;",
        "SELECT id, username, email, password_hash AS bio, image FROM users WHERE id = $1;",
        "tests/test_security_leaks.py -k password_hash",
    ),
    (
        "taken email or username",
        "service/handlers/users.py",
        "    except asyncpg.UniqueViolationError as error:",
        "    except LookupError as error:",
        "tests/test_security_permissions.py -k takes",
    ),
    (
        "vary origin",
        "service/security.py",
        "    headers.add(hdrs.VARY, hdrs.ORIGIN)",
        "    pass",
        "tests/test_security_headers.py -k allowed_origin",
    ),
]


def main(only: list[str]) -> int:
    missed = 0
    for name, path, defence, disabled, tests in DEFENCES:
        if only and not any(part in name for part in only):
            continue
        source = ROOT / path
        original = source.read_text()
        assert original.count(defence) == 1, f"{name}: the defence's text is not found once in {path}"
        source.write_text(original.replace(defence, disabled))
        try:
            run = subprocess.run(  # noqa: S602 - the command line comes from this script's own table
                f".venv/bin/python -m pytest -q -x {tests}",
                shell=True,
                check=False,  # a failing run is the expected outcome, read below
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            source.write_text(original)
        summary = (run.stdout.strip().splitlines() or [""])[-1]
        verdict = {0: "MISSED", 1: "CAUGHT"}.get(run.returncode, f"ERROR({run.returncode})")
        missed += verdict != "CAUGHT"
        print(f"{verdict} {name} :: {summary}", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
