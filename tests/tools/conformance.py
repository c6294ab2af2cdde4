"""Run the RealWorld conformance suites against the real service: the official tests of
RealWorld 2.0 (their Bruno collection, run with the Bruno CLI) and the legacy Postman collection
(newman).

Starts a throwaway embedded PostgreSQL (a fresh data directory in a temporary folder, never
.pgdata/ nor DATABASE_URL), serves `python -m service serve` on a free port (or --port), waits
for /readyz, runs the suites one after the other on that database (each registers users of its
own), prints each suite's figures, and always stops the service and the database afterwards.
Exits 1 when any request or assertion of either suite failed; 2 when it cannot run at all (no
collection, no npx, service not ready).

    python tests/tools/conformance.py [--suite all|realworld|legacy] [--collection PATH] [--bruno DIR] [--port N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live import ROOT, free_port, live_service

DEFAULT_COLLECTION = ROOT.parent / "shared" / "realworld" / "Conduit.postman_collection.json"
DEFAULT_BRUNO = ROOT.parent / "shared" / "realworld" / "bruno"
NEWMAN = ["npx", "--yes", "newman@6"]
BRUNO = ["npx", "--yes", "@usebruno/cli@4.1.0"]


def fail(message: str) -> NoReturn:
    print(f"conformance: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def run_bruno(collection: Path, base: str, folder: Path) -> bool:
    """The whole Bruno collection in one run, from a writable copy (shared/ is read-only); prints
    its requests and assertions passed out of their totals."""
    copy = folder / "bruno"
    shutil.copytree(collection, copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    report = folder / "bruno-report.json"
    command = [*BRUNO, "run", "--env", "local", "--env-var", f"host={base}", "--sandbox", "safe"]
    status = subprocess.run([*command, "--reporter-json", str(report)], check=False, cwd=copy).returncode
    if not report.is_file():
        print(f"conformance: RealWorld 2.0 (Bruno) wrote no report; exit status {status}", file=sys.stderr)
        return False
    data = json.loads(report.read_text())
    summary = (data[0] if isinstance(data, list) else data)["summary"]
    print(
        f"conformance: RealWorld 2.0 (Bruno): {summary['passedRequests']}/{summary['totalRequests']} requests, "
        f"{summary['passedAssertions']}/{summary['totalAssertions']} assertions passed",
        flush=True,
    )
    return status == 0 and summary["passedRequests"] == summary["totalRequests"] > 0


def run_newman(collection: Path, base: str) -> bool:
    unique = f"u{int(time.time())}{os.getpid()}"
    variables = {"APIURL": f"{base}/api", "USERNAME": unique, "EMAIL": f"{unique}@mail.com", "PASSWORD": "password"}
    command = [*NEWMAN, "run", str(collection)]
    for name, value in variables.items():
        command += ["--global-var", f"{name}={value}"]
    status = subprocess.run(command, check=False, cwd=ROOT).returncode
    print(f"conformance: legacy suite (newman) exited with status {status}", flush=True)
    return status == 0


def report_pools(base: str) -> bool:
    """Where the suites' requests took their connections (db_pool_requests_total by pool)."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    counts = {
        line.split('pool="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("db_pool_requests_total{")
    }
    print(f"conformance: connections taken by pool: {counts}", flush=True)
    return any(pool != "primary" and count > 0 for pool, count in counts.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("all", "realworld", "legacy"), default="all")
    parser.add_argument("--collection", type=Path, default=Path(os.environ.get("COLLECTION") or DEFAULT_COLLECTION))
    parser.add_argument("--bruno", type=Path, default=Path(os.environ.get("BRUNO") or DEFAULT_BRUNO))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CONFORMANCE_PORT") or 0) or None)
    parser.add_argument(
        "--replica",
        action="store_true",
        help="with a streaming replica (pg_basebackup -R) of the database in DATABASE_REPLICA_URLS; "
        "fails unless the replica served reads",
    )
    args = parser.parse_args(argv)

    collection, bruno = args.collection.resolve(), args.bruno.resolve()
    if args.suite != "realworld" and not collection.is_file():
        fail(
            f"no collection at {collection} (pass --collection or COLLECTION=/path/to/Conduit.postman_collection.json)"
        )
    if args.suite != "legacy" and not (bruno / "bruno.json").is_file():
        fail(f"no Bruno collection at {bruno} (pass --bruno or BRUNO=/path/to/realworld/bruno)")
    if shutil.which("npx") is None:
        fail("npx (Node.js) is not on PATH")

    # Always a database of its own: the suites write users and articles, and must find no others.
    with live_service(port=args.port or free_port(), replica=args.replica) as live:
        print(f"conformance: service ready at {live.base}{' with a replica' if args.replica else ''}", flush=True)
        passed = True
        if args.suite != "legacy":
            passed &= run_bruno(bruno, live.base, live.folder)
        if args.suite != "realworld":
            passed &= run_newman(collection, live.base)
        if args.replica:
            passed &= report_pools(live.base)
        if not passed:
            print("conformance: the service's log ends with:", file=sys.stderr)
            sys.stderr.write(live.log_tail())
    print(f"conformance: {'passed' if passed else 'FAILED'}", flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
