"""`make fuzz`: schemathesis against the live service with the service's own OpenAPI document.

Starts a throwaway embedded PostgreSQL and `python -m service serve` on FUZZ_PORT (a free port unless set), registers a
user whose token schemathesis sends (tests/schemathesis.toml reads it from CONDUIT_TOKEN), runs
`schemathesis run` with every built-in check, and always stops the service and the database.
Exits with schemathesis's status: non-zero on any failure. Extra arguments go to `schemathesis run`
(e.g. `make fuzz FUZZ_ARGS="--max-examples 200 --include-operation-id login"`).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live import ROOT, live_service

from service.embedded import free_port

CONFIG = ROOT / "tests" / "schemathesis.toml"


def main() -> int:
    # A free port unless FUZZ_PORT names one: two runs on one machine must not meet.
    port = int(os.environ.get("FUZZ_PORT") or free_port())
    max_examples = os.environ.get("FUZZ_MAX_EXAMPLES", "30")
    extra = shlex.split(os.environ.get("FUZZ_ARGS", "")) + sys.argv[1:]
    with live_service(port=port, env={"JWT_SECRET": secrets.token_hex(32)}) as live:
        token = _register(live.base)
        command = [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(CONFIG),
            "run",
            f"{live.base}/api/openapi.json",
            "--max-examples",
            max_examples,
            *extra,
        ]
        print("$", shlex.join(command), flush=True)
        status = subprocess.call(command, cwd=ROOT, env={**os.environ, "CONDUIT_TOKEN": token})
        if status != 0:
            _report_server_errors(live.log_path)
    return status


def _register(base: str) -> str:
    name = f"fuzzer{secrets.token_hex(4)}"
    body = {"user": {"username": name, "email": f"{name}@example.com", "password": secrets.token_hex(12)}}
    request = urllib.request.Request(
        f"{base}/api/users", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["user"]["token"]


def _report_server_errors(log_path: Path) -> None:
    """The service's own account of what went wrong: its error lines (tracebacks included)."""
    lines = log_path.read_text(errors="replace").splitlines()
    errors = [line for line in lines if not line.startswith('{"request_id"')]
    if errors:
        print("--- service log (without access lines), last 80 ---")
        print("\n".join(errors[-80:]))


if __name__ == "__main__":
    sys.exit(main())
