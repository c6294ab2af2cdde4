"""`make bench`: the service under gunicorn on its own seeded PostgreSQL, driven by wrk, side by
side with reference points measured in the same run.

    python -m tests.bench.run                 # the table, the targets, 2 workers against 1
    python -m tests.bench.run --scale         # each read at 1k, 10k, 100k, 1M articles, then skewed
    python -m tests.bench.run --levers [--against main]   # each lever on and off, back to back
    python -m tests.bench.run --only list,slug --duration 10

Everything lives in .bench/ (a throwaway embedded PostgreSQL, logs) and is removed at the end
unless --keep. Ports: BENCH_PORT (default 18160) and the next seven."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tests.tools.live import wait_ready

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".bench"
LUA = Path(__file__).with_name("bench.lua")
JWT_SECRET = "bench-secret-bench-secret-bench-secret-0123"
BASE_PORT = int(os.environ.get("BENCH_PORT", "18160"))


# ---------------------------------------------------------------- processes


def need_wrk() -> str:
    """wrk's path; installs Debian's package when it is missing and we may (root, apt-get)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing Debian's package (apt-get install wrk) ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu) or `brew install wrk`")
    return found


class Gunicorn:
    """One gunicorn master with its workers; stopped with SIGTERM, as an orchestrator would."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], port: int, ready_path: str, cwd: Path = ROOT
    ) -> None:
        self.name, self.port = name, port
        self.log = WORK / f"{name}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *args],
            cwd=cwd,
            env={**os.environ, **env},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_ready(self.url(ready_path), self.process)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_service(
    dsn: str, port: int, workers: int, extra_env: dict[str, str] | None = None, tree: Path | None = None
) -> Gunicorn:
    """The service under gunicorn, as in production; `tree` runs another checkout of it (bench-levers)."""
    env = {
        "APP_ENV": "production",
        "DATABASE_URL": dsn,
        "JWT_SECRET": JWT_SECRET,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "SHUTDOWN_DELAY": "0",
        "MIGRATE_ON_START": "false",
        **(extra_env or {}),
    }
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return Gunicorn(
        f"service-{port}",
        ["-c", "python:service.gunicorn_conf", "service.app:create_app"],
        env,
        port,
        "/readyz",
        cwd=tree or ROOT,
    )


def start_reference(
    dsn: str,
    port: int,
    articles: int,
    worker: str = "aiohttp.GunicornUVLoopWebWorker",
    reset: str = "default",
    gate: bool = False,
) -> Gunicorn:
    env = {"REF_DATABASE_URL": dsn, "REF_ARTICLES": str(articles), "REF_RESET": reset, "REF_GATE": "1" if gate else "0"}
    args = ["--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class", worker, "tests.bench.refapp:create_app"]
    return Gunicorn(f"reference-{port}", args, env, port, "/json")


# ---------------------------------------------------------------- CPU accounting

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd on (state, ppid, ...)


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pid: int, with_children: bool) -> float:
    """CPU time of a process (user + system), and of its children, live (from /proc) and exited
    (the time the parent collected for them): for the database, the postmaster and its backends."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    total = int(fields[11]) + int(fields[12])  # utime, stime
    if with_children:
        total += int(fields[13]) + int(fields[14])  # cutime, cstime of exited, waited-for children
        return total / TICKS + sum(cpu_seconds(child, False) for child in children(pid))
    return total / TICKS


class CpuMeter:
    """CPU seconds spent by the app's worker processes and by PostgreSQL over one measurement:
    per request, a figure that a busy, shared machine disturbs far less than req/s."""

    def __init__(self, app_master: int, postmaster: int, postmasters: list[int] | None = None) -> None:
        self.app_master, self.postmasters = app_master, postmasters or [postmaster]

    def read(self) -> tuple[float, float]:
        app = sum(cpu_seconds(worker, False) for worker in children(self.app_master))
        return app, sum(cpu_seconds(postmaster, True) for postmaster in self.postmasters)


# ---------------------------------------------------------------- wrk


@dataclass
class Result:
    name: str
    requests: int
    duration_us: int
    non2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    app_us: float = 0.0  # app CPU per request (all workers), microseconds
    db_us: float = 0.0  # PostgreSQL CPU per request

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0


@dataclass
class Endpoint:
    key: str
    name: str
    path: str
    env: dict[str, str] = field(default_factory=dict)
    reference: bool = False


def wrk(wrk_path: str, url: str, env: dict[str, str], duration: float, connections: int) -> dict:
    command = [
        wrk_path,
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        url,
    ]
    result = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line.removeprefix("BENCH_RESULT "))
    raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")


def measure(
    wrk_path: str, server: Gunicorn, endpoint: Endpoint, args: argparse.Namespace, postmasters: list[int] | None = None
) -> Result:
    """wrk on one endpoint; the CPU of the app's workers, and of `postmasters` (default: the one
    PostgreSQL server) with all their processes."""
    url = server.url(endpoint.path)
    if args.warmup:
        wrk(wrk_path, url, endpoint.env, args.warmup, args.connections)
    meter = CpuMeter(server.process.pid, args.postmaster, postmasters)
    app_before, db_before = meter.read()
    raw = wrk(wrk_path, url, endpoint.env, args.duration, args.connections)
    app_after, db_after = meter.read()
    per_request = 1e6 / max(raw["requests"], 1)
    result = Result(
        name=endpoint.name,
        requests=raw["requests"],
        duration_us=raw["duration_us"],
        non2xx=raw["non2xx"],
        socket_errors=raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"],
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        app_us=(app_after - app_before) * per_request,
        db_us=(db_after - db_before) * per_request,
    )
    print(
        f"  {endpoint.name:<44} {result.rps:>9.0f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms"
        f"  cpu/req app {result.app_us:5.0f} us db {result.db_us:5.0f} us"
        f"  non-2xx {result.non2xx}" + (f"  socket errors {result.socket_errors}" if result.socket_errors else ""),
        flush=True,
    )
    return result


# ---------------------------------------------------------------- database


# The service's own role logs in with a password, checked with scram-sha-256 (PostgreSQL's
# default since 14), as on a production server; the bench's administrator keeps trust. Only
# opening a connection pays for it: connect-per-request on every request, a pool once per
# connection. `--trust` measures with no password at all.
APP_ROLE, APP_PASSWORD = "conduit", "bench-password-0123"


async def production_auth(admin_dsn: str, pgdata: Path, trust: bool) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}'")
        await admin.execute(f"CREATE ROLE generic_plans LOGIN SUPERUSER PASSWORD '{APP_PASSWORD}'")  # --levers
        await admin.execute("ALTER ROLE generic_plans SET plan_cache_mode = force_generic_plan")
        hba = pgdata / "pg_hba.conf"  # the first line that matches decides
        method = "trust" if trust else "scram-sha-256"
        hba.write_text(f"host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 {method}\n" + hba.read_text())
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()


def app_dsn(admin_dsn: str, database: str, role: str = APP_ROLE) -> str:
    host = admin_dsn.split("@", 1)[1].rsplit("/", 1)[0]
    return f"postgresql://{role}:{APP_PASSWORD}@{host}/{database}"


async def prepare_database(
    admin_dsn: str, name: str, scale, distinct_hashes: bool = True, tree: Path | None = None
) -> tuple[str, dict]:
    """A new database owned by the service's role, migrated and seeded by that role; its DSN.
    With `tree`, that checkout's migrations make the schema (`--against`)."""
    from service.migrate import apply_migrations
    from tests.bench.seed import seed

    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}" OWNER {APP_ROLE}')
    finally:
        await admin.close()
    dsn = app_dsn(admin_dsn, name)
    if tree is not None:  # the bench's own setup, before anything is measured
        subprocess.run(  # noqa: ASYNC221 - the old tree's migrator runs in its own interpreter
            [sys.executable, "-m", "service", "migrate"],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree), "DATABASE_URL": dsn, "APP_ENV": "development"},
            check=True,
        )
    conn = await asyncpg.connect(dsn)
    try:
        if tree is None:
            await apply_migrations(conn)
        facts = await seed(conn, scale, distinct_hashes=distinct_hashes)
    finally:
        await conn.close()
    return dsn, facts


async def prepare_empty(admin_dsn: str, name: str) -> str:
    """A new database owned by the service's role, migrated by that role and left empty; its DSN."""
    from service.migrate import apply_migrations

    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}" OWNER {APP_ROLE}')
    finally:
        await admin.close()
    dsn = app_dsn(admin_dsn, name)
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    return dsn


def login(base: str, username: str) -> str:
    """A token the way a client gets one: POST /api/users/login with the seeded password."""
    from tests.bench.seed import PASSWORD

    body = json.dumps({"user": {"email": f"{username}@example.com", "password": PASSWORD}}).encode()
    request = urllib.request.Request(
        base + "/api/users/login", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["user"]["token"]


# ---------------------------------------------------------------- the table


def fan_tokens(facts: dict, count: int = 100) -> str:
    """Tokens of many seeded users (signed with the bench's secret: no argon2 per login), so that
    concurrent favorites of one article come from different users, as they would."""
    from service.auth import issue_token

    return ",".join(issue_token(n, JWT_SECRET, 3600) for n in range(1, min(count, len(facts["users"])) + 1))


def endpoints(facts: dict, tokens: dict[str, Any], slug_file: Path) -> list[Endpoint]:
    from tests.bench.seed import TAGS

    reader = {"BENCH_TOKENS": tokens["reader"]}
    writers = {"BENCH_TOKENS": ",".join(tokens["writers"])}
    fans = {"BENCH_TOKENS": fan_tokens(facts)}
    slugs = {"BENCH_SLUGS": str(slug_file)}
    hot_file = slug_file.with_name("hot-slug.txt")
    hot_file.write_text(facts["slugs"][len(facts["slugs"]) // 2] + "\n")
    return [
        Endpoint("json", "reference: fixed JSON", "/json", reference=True),
        Endpoint("db", "reference: pool + one SELECT", "/db", reference=True),
        Endpoint("connect", "reference: connect per request", "/connect", reference=True),
        Endpoint("livez", "GET /livez (middlewares, no database)", "/livez"),
        Endpoint("list", "GET /api/articles?limit=20", "/api/articles?limit=20"),
        Endpoint("tag", "GET /api/articles?tag=", f"/api/articles?limit=20&tag={facts['tag']}"),
        Endpoint("author", "GET /api/articles?author=", f"/api/articles?limit=20&author={facts['author']}"),
        Endpoint("favorited", "GET /api/articles?favorited=", f"/api/articles?limit=20&favorited={facts['favoriter']}"),
        Endpoint("list_auth", "GET /api/articles?limit=20 (with token)", "/api/articles?limit=20", env=reader),
        Endpoint("feed", "GET /api/articles/feed (with token)", "/api/articles/feed?limit=20", env=reader),
        Endpoint("slug", "GET /api/articles/{slug}", "/api/articles/_slug_", env=slugs),
        Endpoint("slug_auth", "GET /api/articles/{slug} (with token)", "/api/articles/_slug_", env={**slugs, **reader}),
        Endpoint("user", "GET /api/user (with token)", "/api/user", env=reader),
        Endpoint("tags", "GET /api/tags", "/api/tags"),
        Endpoint("comments", "GET /api/articles/{slug}/comments", "/api/articles/_slug_/comments", env=slugs),
        Endpoint(
            "create",
            "POST /api/articles",
            "/api/articles",
            env={**writers, "BENCH_MODE": "create", "BENCH_TAGS": ",".join(TAGS), "BENCH_RUN": str(int(time.time()))},
        ),
        Endpoint(
            "favorite",
            "POST+DELETE /api/articles/{slug}/favorite",
            "/api/articles",
            env={**writers, **slugs, "BENCH_MODE": "favorite"},
        ),
        # Issue 13: many users at once on one hot article, and on many articles.
        Endpoint(
            "favorite_hot",
            "POST+DELETE .../favorite, one hot article",
            "/api/articles",
            env={**fans, "BENCH_SLUGS": str(hot_file), "BENCH_MODE": "favorite"},
        ),
        Endpoint(
            "favorite_many",
            "POST+DELETE .../favorite, many articles",
            "/api/articles",
            env={**fans, **slugs, "BENCH_MODE": "favorite"},
        ),
    ]


TARGETS = [
    # (endpoint keys, minimum fraction of "pool + one SELECT")
    (("slug",), 0.6),
    (("user",), 0.7),
    (("list", "tag", "author", "favorited", "feed"), 0.15),
]
SINGLE_READS = ("slug", "slug_auth")


def report(results: dict[str, Result], reference_rps: float, reference_cpu: float, connections: int) -> bool:
    print()
    header = (
        f"| {'endpoint':<44} | {'req/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'non-2xx':>7} "
        f"| {'x pool+SELECT':>13} | {'app CPU us/req':>14} | {'db CPU us/req':>13} | {'x by CPU':>8} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    for result in results.values():
        failures = result.non2xx + result.socket_errors
        print(
            f"| {result.name:<44} | {result.rps:>8.0f} | {result.p50_ms:>7.2f} | {result.p99_ms:>7.2f} "
            f"| {failures:>7} | {result.rps / reference_rps:>13.2f} | {result.app_us:>14.0f} | {result.db_us:>13.0f} "
            f"| {reference_cpu / max(result.app_us + result.db_us, 1):>8.2f} |"
        )
    print()
    verdicts = []
    for keys, minimum in TARGETS:
        for key in keys:
            if key in results:
                ratio = results[key].rps / reference_rps
                verdicts.append(
                    (ratio >= minimum, f"{results[key].name}: {ratio:.2f} of pool + one SELECT (>= {minimum})")
                )
    if "connect" in results:
        ratio = reference_rps / results["connect"].rps
        verdicts.append((ratio >= 20, f"pooled / connect-per-request: {ratio:.1f}x (>= 20x)"))
    errors = {name: r.non2xx + r.socket_errors for name, r in results.items() if r.non2xx + r.socket_errors}
    verdicts.append((not errors, f"zero non-2xx and socket errors ({errors or 'none'})"))
    for key in SINGLE_READS:
        if key in results:
            p99 = results[key].p99_ms
            verdicts.append((p99 < 50, f"{results[key].name}: p99 {p99:.1f} ms at {connections} connections (< 50 ms)"))
    for ok, text in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return all(ok for ok, _ in verdicts)


# ---------------------------------------------------------------- main runs


def load_info() -> str:
    with open("/proc/loadavg") as f:
        return f"load average {' '.join(f.read().split()[:3])} on {os.cpu_count()} cores"


def main_table(args: argparse.Namespace, wrk_path: str, admin_dsn: str) -> bool:
    from tests.bench.seed import Scale

    scale = Scale()
    started = time.monotonic()
    dsn, facts = asyncio.run(prepare_database(admin_dsn, "conduit_bench", scale))
    print(f"seeded {scale} in {time.monotonic() - started:.1f}s", flush=True)
    slug_file = WORK / "slugs.txt"
    slug_file.write_text("\n".join(facts["slugs"]) + "\n")

    workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
    with contextlib.ExitStack() as stack:
        reference = start_reference(dsn, BASE_PORT + 1, scale.articles)
        stack.callback(reference.stop)
        service = start_service(dsn, BASE_PORT, workers)
        stack.callback(service.stop)
        tokens = {
            "reader": login(service.url(""), facts["follower"]),
            "writers": [login(service.url(""), name) for name in facts["users"][:8]],
        }
        chosen = endpoints(facts, tokens, slug_file)
        if args.only:
            chosen = [e for e in chosen if e.key in args.only or e.key == "db"]
        print(
            f"\nwrk -t1 -c{args.connections}, {args.duration}s per endpoint after a {args.warmup}s warm-up; "
            f"service with {workers} worker(s); {load_info()}",
            flush=True,
        )
        results: dict[str, Result] = {}
        for endpoint in chosen:
            results[endpoint.key] = measure(wrk_path, reference if endpoint.reference else service, endpoint, args)
        # The reference again at the end: the machine is shared, so its drift says how noisy the run was.
        again = measure(wrk_path, reference, next(e for e in chosen if e.key == "db"), args)
        reference_rps = statistics.mean([results["db"].rps, again.rps])
        reference_cpu = statistics.mean([r.app_us + r.db_us for r in (results["db"], again)])
        print(
            f"\n'pool + one SELECT' measured twice: {results['db'].rps:.0f} and {again.rps:.0f} req/s "
            f"(drift {abs(again.rps - results['db'].rps) / reference_rps:.0%}); ratios use the mean, "
            f"{reference_rps:.0f} req/s; {load_info()}"
        )
        ok = report(results, reference_rps, reference_cpu, args.connections)
        service.stop()
        if args.workers_compare and workers == 1:
            compare_workers(args, wrk_path, dsn, chosen, results)
    return ok


def compare_workers(args, wrk_path: str, dsn: str, chosen: list[Endpoint], one: dict[str, Result]) -> None:
    keys = [k for k in ("db", "slug", "list", "user") if k in one]
    print("\n2 workers against 1 (same database, same wrk settings; 2 cores shared with wrk and PostgreSQL):")
    two = start_service(dsn, BASE_PORT + 2, 2)
    try:
        for endpoint in chosen:
            if endpoint.key in keys and not endpoint.reference:
                result = measure(wrk_path, two, endpoint, args)
                print(f"    -> 2 workers / 1 worker: {result.rps / one[endpoint.key].rps:.2f}")
    finally:
        two.stop()


# ---------------------------------------------------------------- replica

REPLICA_READS = (
    "list",
    "tag",
    "author",
    "favorited",
    "list_auth",
    "feed",
    "slug",
    "slug_auth",
    "user",
    "tags",
    "comments",
)
REPLICA_WRITES = ("create", "favorite")


def pool_counts(server: Gunicorn) -> dict[str, float]:
    with urllib.request.urlopen(server.url("/metrics"), timeout=10) as response:
        text = response.read().decode()
    counts = {
        line.split('pool="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("db_pool_requests_total{")
    }
    names = {
        "db_fence_lookups_total": "fence lookups",
        "db_fence_reads_total": "fence reads",
        "db_fence_reruns_total": "fence reruns",
    }
    for line in text.splitlines():  # not pools: the fence lookups, and the reads they served
        name, _, value = line.partition(" ")
        if name in names:
            counts[names[name]] = float(value)
    return counts


REPLICA_TARGET = 1.1  # issue 14: a read costs at most this much more with one replica configured


def median_interval(groups: list[list[float]], draws: int = 2000) -> tuple[float, float]:
    """A 95% interval of the median of the ratios in `groups` (one group per read): a bootstrap
    that redraws each group's rounds from its own, seeded, so the same rounds give the same
    interval. One read's median moves by several percent between runs on this shared machine; the
    interval says how far it could have landed."""
    rng = random.Random(0)
    medians = sorted(
        statistics.median(ratio for group in groups for ratio in rng.choices(group, k=len(group))) for _ in range(draws)
    )
    return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def median_by_rps(results: list[Result]) -> Result:
    return sorted(results, key=lambda r: r.rps)[(len(results) - 1) // 2]


def main_replica(args: argparse.Namespace, wrk_path: str, admin_dsn: str, primary) -> bool:
    """Each read of `make bench`, without and with one replica configured, back to back in one run
    (the same seeded database; the replica made from it by pg_basebackup -R): the ratio of
    requests per second and of CPU per request (the app's workers and every PostgreSQL process,
    the replica's included), then the writes, then where the requests took their connections."""
    from tests.bench.seed import Scale

    scale = Scale()
    dsn, facts = asyncio.run(prepare_database(admin_dsn, "conduit_bench", scale))
    slug_file = WORK / "slugs.txt"
    slug_file.write_text("\n".join(facts["slugs"]) + "\n")
    replica = primary.replica(WORK / "replica")
    replica_dsn = dsn.rsplit("@", 1)[0] + "@" + replica.start().split("@", 1)[1].rsplit("/", 1)[0] + "/conduit_bench"
    postmasters = [args.postmaster, int((replica.pgdata / "postmaster.pid").read_text().split()[0])]
    workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
    try:
        with contextlib.ExitStack() as stack:
            alone = start_service(dsn, BASE_PORT, workers)
            stack.callback(alone.stop)
            spread = start_service(dsn, BASE_PORT + 2, workers, {"DATABASE_REPLICA_URLS": replica_dsn})
            stack.callback(spread.stop)
            tokens = {
                "reader": login(alone.url(""), facts["follower"]),
                "writers": [login(alone.url(""), name) for name in facts["users"][:8]],
            }
            chosen = {e.key: e for e in endpoints(facts, tokens, slug_file)}
            print(
                f"\nwrk -t1 -c{args.connections}, {args.duration}s per endpoint and service after a {args.warmup}s "
                f"warm-up; {workers} worker(s); without the replica, then with it, {args.rounds} alternating "
                f"rounds per endpoint (the median of the rounds' ratios); {load_info()}",
                flush=True,
            )
            before = pool_counts(spread)
            rows = []
            for key in (*REPLICA_READS, *REPLICA_WRITES):
                if args.only and key not in args.only:
                    continue
                endpoint = chosen[key]
                # Both measured with the CPU of both servers: the idle replica's own (replay, its
                # monitor sessions) is part of what having one costs. Alternating rounds, each a
                # pair measured back to back, and the median of the pairs' ratios: the machine is
                # shared, and its load drifts between rounds more than within one.
                pairs = [
                    _ab_round(wrk_path, alone, spread, endpoint, args, turn, postmasters) for turn in range(args.rounds)
                ]
                rows.append((key, endpoint.name, pairs))
            after = pool_counts(spread)
    finally:
        replica.destroy()
    print()
    print(
        f"| {'endpoint':<44} | {'req/s alone':>11} | {'req/s +replica':>14} "
        f"| {'x time/req':>10} | {'95% interval':>12} | {'x CPU/req':>9} | non-2xx |"
    )
    print(f"|{'-' * 46}|{'-' * 13}|{'-' * 16}|{'-' * 12}|{'-' * 14}|{'-' * 11}|---------|")
    reads: list[list[float]] = []  # each read's paired ratios, for all reads together
    above: list[str] = []  # reads whose median is above the target
    shown_above: list[str] = []  # reads whose whole interval is
    failures = 0
    for key, name, pairs in rows:
        without = median_by_rps([a for a, _ in pairs])
        with_replica = median_by_rps([b for _, b in pairs])
        ratios = [a.rps / max(b.rps, 1) for a, b in pairs]
        time_ratio = statistics.median(ratios)
        low, high = median_interval([ratios])
        cpu_ratio = statistics.median((b.app_us + b.db_us) / max(a.app_us + a.db_us, 1) for a, b in pairs)
        failed = sum(r.non2xx + r.socket_errors for pair in pairs for r in pair)
        print(
            f"| {name:<44} | {without.rps:>11.0f} | {with_replica.rps:>14.0f} | {time_ratio:>10.2f} "
            f"| {f'{low:.2f}-{high:.2f}':>12} | {cpu_ratio:>9.2f} | {failed:>7} |"
        )
        if key in REPLICA_READS:
            reads.append(ratios)
            failures += failed
            if time_ratio > REPLICA_TARGET:
                above.append(f"{name} {time_ratio:.2f} ({low:.2f}-{high:.2f})")
            if low > REPLICA_TARGET:
                shown_above.append(name)
    counts = {pool: after.get(pool, 0) - before.get(pool, 0) for pool in after if not pool.startswith("fence")}
    print(f"\nconnections taken by pool during the run with the replica: {counts}")
    lookups = after.get("fence lookups", 0) - before.get("fence lookups", 0)
    fenced = after.get("fence reads", 0) - before.get("fence reads", 0)
    reruns = after.get("fence reruns", 0) - before.get("fence reruns", 0)
    print(
        f"fence lookups on the primary: {lookups:.0f}, for {fenced:.0f} reads ({fenced / max(lookups, 1):.1f} per "
        f"lookup); reads run again on the primary: {reruns:.0f}"
    )
    print(
        "x time/req: req/s without the replica / req/s with it, the median of the rounds' paired ratios, and its "
        "95% interval (bootstrap over the rounds); x CPU/req: CPU per request with / without (app workers + every "
        "PostgreSQL process of both servers)"
    )
    if not reads:
        return failures == 0
    together = statistics.median(ratio for ratios in reads for ratio in ratios)
    low, high = median_interval(reads)
    print(
        f"all reads together: {together:.2f}x the time per request (95% interval {low:.2f}-{high:.2f}, "
        f"{sum(map(len, reads))} paired rounds of {len(reads)} reads)"
    )
    print(f"reads whose median is above {REPLICA_TARGET}x: {'; '.join(above) or 'none'}")
    ok = high <= REPLICA_TARGET and not shown_above and failures == 0
    print(
        f"{'PASS' if ok else 'FAIL'}  reads at most {REPLICA_TARGET}x the time per request with one replica "
        f"configured: all reads together within it (the interval's top), no read shown above it (an interval "
        f"wholly above), no error" + (f"; shown above: {', '.join(shown_above)}" if shown_above else "")
    )
    return ok


# ---------------------------------------------------------------- levers


def serialization_microbench(dsn: str) -> None:
    """In-process: a page of 20 articles as the old code made it (records -> models -> pydantic's
    JSON), with orjson instead, and as PostgreSQL's text passed through."""
    import timeit

    import orjson

    from schemas.articles import MultipleArticlesResponse
    from service.handlers.articles import list_statement

    async def page() -> str:
        conn = await asyncpg.connect(dsn)
        try:
            row = await conn.fetchrow(list_statement(False, False, False), None, 20, 0)
            assert row is not None
            return row["body"]
        finally:
            await conn.close()

    text = asyncio.run(page())
    data = orjson.loads(text)
    runs = 2000

    def each(fn) -> float:
        return min(timeit.repeat(fn, number=runs, repeat=5)) / runs * 1e6

    build = each(lambda: MultipleArticlesResponse.model_validate(data))
    model = MultipleArticlesResponse.model_validate(data)
    pydantic_json = each(model.json_bytes)
    orjson_json = each(lambda: orjson.dumps(model.model_dump(mode="json", by_alias=True)))
    passthrough = each(text.encode)
    print("\nserialization of one page of 20 articles, in-process (microseconds per page):")
    print(f"  build the models from values              {build:8.1f}")
    print(f"  pydantic's JSON (model -> bytes)          {pydantic_json:8.1f}")
    print(f"  orjson (model_dump, then orjson.dumps)    {orjson_json:8.1f}")
    print(f"  PostgreSQL's JSON text passed through     {passthrough:8.1f}")


def export_tree(rev: str) -> Path:
    """The service as it was at `rev`, exported (not checked out) into .bench/."""
    tree = WORK / f"rev-{rev}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def main_levers(args: argparse.Namespace, wrk_path: str, admin_dsn: str) -> None:
    """Each lever on and off, side by side in one run: A and B serve the same database at once,
    and each endpoint is measured on A, then at once on B."""
    from tests.bench.seed import Scale

    scale = Scale()
    dsn, facts = asyncio.run(prepare_database(admin_dsn, "conduit_bench", scale))
    slug_file = WORK / "slugs.txt"
    slug_file.write_text("\n".join(facts["slugs"]) + "\n")
    port = BASE_PORT
    with contextlib.ExitStack() as stack:

        def started(server: Gunicorn) -> Gunicorn:
            stack.callback(server.stop)
            return server

        current = started(start_service(dsn, port, 1))
        tokens = {"reader": login(current.url(""), facts["follower"]), "writers": []}
        by_key = {e.key: e for e in endpoints(facts, tokens, slug_file)}
        uvloop_ref = started(start_reference(dsn, port + 1, scale.articles))
        levers: list[tuple[str, str, Gunicorn, str, Gunicorn, list[str]]] = [
            (
                "worker class",
                "aiohttp.GunicornWebWorker (asyncio)",
                started(start_reference(dsn, port + 2, scale.articles, worker="aiohttp.GunicornWebWorker")),
                "GunicornUVLoopWebWorker (uvloop)",
                uvloop_ref,
                ["json", "db"],
            ),
            (
                "asyncpg reset query on release",
                "asyncpg's default",
                uvloop_ref,
                "skipped (as the service does)",
                started(start_reference(dsn, port + 3, scale.articles, reset="skip")),
                ["db"],
            ),
            (
                "waiting for a pool connection",
                "asyncpg's queue",
                uvloop_ref,
                "service.db.Gate in front",
                started(start_reference(dsn, port + 7, scale.articles, gate=True)),
                ["db"],
            ),
            (
                "asyncpg statement cache",
                "DB_STATEMENT_CACHE_SIZE=0",
                started(start_service(dsn, port + 4, 1, {"DB_STATEMENT_CACHE_SIZE": "0"})),
                "DB_STATEMENT_CACHE_SIZE=100 (default)",
                current,
                ["slug", "list", "tag", "user"],
            ),
        ]
        # The same service logged in as a role whose sessions plan every statement generically.
        generic_dsn = app_dsn(admin_dsn, "conduit_bench", role="generic_plans")
        levers.append(
            (
                "plan_cache_mode",
                "auto (PostgreSQL's default)",
                current,
                "force_generic_plan (ALTER ROLE ... SET)",
                started(start_service(generic_dsn, port + 6, 1)),
                ["list", "tag", "favorited", "feed", "slug"],
            )
        )
        if args.against:
            # The old code on a database of its own, migrated by the old code and seeded alike:
            # writes are measured with the old schema's triggers and indexes, not the new ones.
            tree = export_tree(args.against)
            old_dsn, _ = asyncio.run(prepare_database(admin_dsn, "conduit_bench_old", scale, tree=tree))
            old = started(start_service(old_dsn, port + 5, 1, tree=tree))
            levers.append(
                (
                    f"the code at {args.against} against now",
                    args.against,
                    old,
                    "now",
                    current,
                    [
                        "livez",
                        "slug",
                        "slug_auth",
                        "user",
                        "list",
                        "list_auth",
                        "tag",
                        "author",
                        "favorited",
                        "feed",
                        "comments",
                        "tags",
                        "favorite_hot",
                        "favorite_many",
                    ],
                )
            )
        print(f"\nwrk -t1 -c{args.connections}, {args.duration}s each after a {args.warmup}s warm-up; {load_info()}")
        summary = []
        for lever, a_name, a, b_name, b, keys in levers:
            chosen = [key for key in keys if args.only is None or key in args.only]
            if not chosen:
                continue
            print(f"\n{lever}: A = {a_name}, B = {b_name}")
            for key in chosen:
                endpoint = by_key[key]
                rounds = [_ab_round(wrk_path, a, b, endpoint, args, turn) for turn in range(args.rounds)]
                for ra, rb in rounds:
                    line = (
                        f"{lever:<34} {endpoint.name:<40} B/A req/s {rb.rps / ra.rps:5.2f}   "
                        f"cpu/req app {ra.app_us:4.0f} -> {rb.app_us:4.0f} us, "
                        f"db {ra.db_us:4.0f} -> {rb.db_us:4.0f} us, p99 {ra.p99_ms:5.1f} -> {rb.p99_ms:5.1f} ms"
                    )
                    print("    " + line, flush=True)
                    summary.append(line)
                if len(rounds) > 1:
                    by_rps = statistics.median(rb.rps / ra.rps for ra, rb in rounds)
                    by_cpu = statistics.median(
                        (ra.app_us + ra.db_us) / (rb.app_us + rb.db_us) for ra, rb in rounds if rb.app_us + rb.db_us
                    )
                    line = (
                        f"{lever:<34} {endpoint.name:<40} median of {len(rounds)} rounds: "
                        f"B/A req/s {by_rps:5.2f}, by CPU per request (app + db) {by_cpu:5.2f}"
                    )
                    print("    " + line, flush=True)
                    summary.append(line)
        print("\nSummary (B against A, measured back to back):")
        for line in summary:
            print("  " + line)
    serialization_microbench(dsn)


def _ab_round(
    wrk_path: str,
    a: Gunicorn,
    b: Gunicorn,
    endpoint: Endpoint,
    args: argparse.Namespace,
    turn: int,
    postmasters: list[int] | None = None,
) -> tuple[Result, Result]:
    """One A/B measurement; every other round measures B first (ABBA), so a drift of the shared
    machine's load during the run weighs on both sides alike."""
    if turn % 2:
        rb = measure(wrk_path, b, endpoint, args, postmasters)
        return measure(wrk_path, a, endpoint, args, postmasters), rb
    ra = measure(wrk_path, a, endpoint, args, postmasters)
    return ra, measure(wrk_path, b, endpoint, args, postmasters)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.run")
    parser.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", "5")), help="seconds")
    parser.add_argument("--warmup", type=int, default=1, help="seconds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--only",
        type=lambda s: set(s.split(",")),
        default=None,
        help="comma-separated endpoint keys (json,db,connect,livez,list,tag,author,favorited,"
        "list_auth,feed,slug,slug_auth,user,tags,comments,create,favorite,favorite_hot,favorite_many)",
    )
    parser.add_argument("--no-workers-compare", dest="workers_compare", action="store_false")
    parser.add_argument(
        "--scale", action="store_true", help="each read's cost at 1k, 10k, 100k and 1M articles, then with skew"
    )
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[1_000, 10_000, 100_000, 1_000_000],
        help="article counts for --scale",
    )
    parser.add_argument("--levers", action="store_true", help="each lever on and off, side by side")
    parser.add_argument(
        "--replica", action="store_true", help="each read without and with one streaming replica configured"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternating A/B rounds per endpoint: with --replica (default 3), with --levers (default 1)",
    )
    parser.add_argument(
        "--against",
        metavar="GIT_REV",
        default=None,
        help="with --levers: also the service as it was at GIT_REV (e.g. main) against now",
    )
    parser.add_argument("--keep", action="store_true", help="keep .bench/ (the database and the logs)")
    parser.add_argument(
        "--trust", action="store_true", help="the service's role logs in without a password (default: scram-sha-256)"
    )
    args = parser.parse_args()
    if args.rounds is None:
        args.rounds = 3 if args.replica else 1

    from service.embedded import EmbeddedPostgres

    wrk_path = need_wrk()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    server = EmbeddedPostgres(WORK / "pgdata", durable=False)
    ok = True
    try:
        admin_dsn = server.start()
        asyncio.run(production_auth(admin_dsn, server.pgdata, args.trust))
        args.postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0])
        if args.scale:
            from tests.bench.scale import main_scale

            main_scale(args, wrk_path, admin_dsn)
        elif args.levers:
            main_levers(args, wrk_path, admin_dsn)
        elif args.replica:
            ok = main_replica(args, wrk_path, admin_dsn, server)
        else:
            ok = main_table(args, wrk_path, admin_dsn)
    finally:
        if args.keep:
            server.stop()
        else:
            server.destroy()
            shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
