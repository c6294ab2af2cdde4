"""The access log: one JSON line per request on stderr, the lines of one event-loop turn in one
write, none held past its turn. (Under real gunicorn: tests/test_gunicorn_observability.py.)"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from service import keys
from service.observability import PIPE_BUF, AccessLog


class Recorder:
    """Stands in for sys.stderr: each write() call is kept whole."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in "".join(self.writes).splitlines()]


@pytest.fixture
def stderr() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(client, stderr, caplog):
    client.server.app[keys.ACCESS_LOG].stream = stderr
    caplog.set_level(logging.INFO, logger="service.access")  # as create_app's basicConfig sets it
    return client


async def test_the_lines_of_one_turn_go_out_together_at_its_end(stderr):
    log = AccessLog(stderr)
    for n in range(3):
        log.write(f'{{"n": {n}}}')
    assert stderr.writes == []  # still within the turn that wrote them
    await asyncio.sleep(0)  # one turn of the loop, no waiting
    assert stderr.writes == ['{"n": 0}\n{"n": 1}\n{"n": 2}\n']
    log.write('{"n": 3}')
    await asyncio.sleep(0)
    assert stderr.writes[1:] == ['{"n": 3}\n']


async def test_a_busy_turn_is_written_in_pieces_no_larger_than_a_pipe_writes_atomically(stderr):
    """Workers share stderr, usually a pipe: a write of up to PIPE_BUF bytes is never interleaved
    with another process's, so no line is ever cut by another worker's."""
    log = AccessLog(stderr)
    lines = [json.dumps({"n": n, "pad": "x" * 100}) for n in range(100)]
    for line in lines:
        log.write(line)
    await asyncio.sleep(0)
    assert len(stderr.writes) > 1
    assert all(len(w.encode()) <= PIPE_BUF and w.endswith("\n") for w in stderr.writes)
    assert "".join(stderr.writes).splitlines() == lines
    log.write("y" * (PIPE_BUF + 10))  # a line longer than that goes alone, whole
    await asyncio.sleep(0)
    assert stderr.writes[-1] == "y" * (PIPE_BUF + 10) + "\n"


def test_outside_a_running_loop_a_line_is_written_at_once(stderr):
    AccessLog(stderr).write('{"n": 1}')
    assert stderr.writes == ['{"n": 1}\n']


async def test_each_request_has_its_line_by_the_time_its_answer_arrives(client, stderr):
    for path, route in (
        ("/livez", "/livez"),
        ("/api/tags", "/api/tags"),
        ("/api/articles/gone", "/api/articles/{slug}"),
    ):
        response = await client.get(path)
        line = stderr.lines()[-1]
        assert line.pop("duration_ms") >= 0
        assert line == {
            "request_id": response.headers["X-Request-ID"],
            "method": "GET",
            "route": route,
            "status": response.status,
        }
    assert len(stderr.lines()) == 3


async def test_a_level_above_info_turns_the_lines_off(client, stderr, caplog):
    caplog.set_level(logging.WARNING, logger="service.access")
    assert (await client.get("/livez")).status == 200
    assert stderr.writes == []
