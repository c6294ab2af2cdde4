"""Run the official RealWorld conformance suite (newman) against the real service.

Starts a throwaway embedded PostgreSQL (a fresh data directory in a temporary folder, never
.pgdata/ nor DATABASE_URL), serves `python -m service serve`
on a free port (or --port), waits for /readyz, runs the Postman collection with newman, and
always stops the service and the database afterwards. Exits with newman's status: non-zero on
any failed assertion; 2 when it cannot run at all (no collection, no npx, service not ready).

    python tests/tools/conformance.py [--collection PATH] [--port N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live import ROOT, free_port, live_service

DEFAULT_COLLECTION = ROOT.parent / "shared" / "realworld" / "Conduit.postman_collection.json"
NEWMAN = ["npx", "--yes", "newman@6"]


def fail(message: str) -> NoReturn:
    print(f"conformance: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=Path, default=Path(os.environ.get("COLLECTION") or DEFAULT_COLLECTION))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CONFORMANCE_PORT") or 0) or None)
    args = parser.parse_args(argv)

    collection = args.collection.resolve()
    if not collection.is_file():
        fail(
            f"no collection at {collection} (pass --collection or COLLECTION=/path/to/Conduit.postman_collection.json)"
        )
    if shutil.which("npx") is None:
        fail("npx (Node.js) is not on PATH")

    # Always a database of its own: the suite writes users and articles, and must find no others.
    with live_service(port=args.port or free_port()) as live:
        print(f"conformance: service ready at {live.base}; running {collection}", flush=True)
        unique = f"u{int(time.time())}{os.getpid()}"
        status = subprocess.run(
            [
                *NEWMAN,
                "run",
                str(collection),
                "--global-var",
                f"APIURL={live.base}/api",
                "--global-var",
                f"USERNAME={unique}",
                "--global-var",
                f"EMAIL={unique}@mail.com",
                "--global-var",
                "PASSWORD=password",
            ],
            cwd=ROOT,
            check=False,  # newman's failures are reported below
        ).returncode
        if status != 0:
            print("conformance: the service's log ends with:", file=sys.stderr)
            sys.stderr.write(live.log_tail())
    if status != 0:
        print(f"conformance: newman exited with status {status}", file=sys.stderr)
    return 1 if status else 0


if __name__ == "__main__":
    raise SystemExit(main())
