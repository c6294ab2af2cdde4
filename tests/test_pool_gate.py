"""The gate in front of the pool (service/db.py, Gate): places go to waiters in arrival order, a
newcomer never overtakes one already waiting, a deadline ends a wait, and a place handed to a
request that is cancelled at that moment passes on instead of being lost."""

from __future__ import annotations

import asyncio

import pytest

from service.db import Gate, _expire


async def turn() -> None:
    """Let every task that can run, run (no waiting on the clock)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_places_go_in_arrival_order_and_a_newcomer_waits_its_turn():
    gate = Gate(1)
    await gate.enter(5)
    served: list[str] = []

    async def request(name: str) -> None:
        await gate.enter(5)
        served.append(name)

    first, second = asyncio.create_task(request("first")), asyncio.create_task(request("second"))
    await turn()
    assert served == []
    gate.leave()  # handed to "first": a request arriving now must queue behind "second"
    late = asyncio.create_task(request("late"))
    await turn()
    assert served == ["first"]
    gate.leave()
    await turn()
    assert served == ["first", "second"]
    gate.leave()
    await turn()
    assert served == ["first", "second", "late"]
    await asyncio.gather(first, second, late)


async def test_a_wait_ends_at_its_deadline_and_the_place_count_stays_right():
    gate = Gate(1)
    await gate.enter(5)
    with pytest.raises(TimeoutError):
        await gate.enter(0.01)
    gate.leave()  # nobody waits any more (the expired waiter is skipped): the place is free
    await asyncio.wait_for(gate.enter(5), 1)  # taken at once
    with pytest.raises(TimeoutError):
        await gate.enter(0.01)  # one place, and it is held


async def test_a_place_handed_to_a_cancelled_request_goes_to_the_next():
    gate = Gate(1)
    await gate.enter(5)
    cancelled = asyncio.create_task(gate.enter(5))
    following = asyncio.create_task(gate.enter(5))
    await turn()
    gate.leave()  # the place is handed to `cancelled` ...
    cancelled.cancel()  # ... which is cancelled before it could resume
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.wait_for(following, 1)
    gate.leave()
    await asyncio.wait_for(gate.enter(5), 1)  # exactly one place in circulation
    with pytest.raises(TimeoutError):
        await gate.enter(0.01)


async def test_a_request_cancelled_just_as_its_deadline_passed_gives_back_nothing():
    gate = Gate(1)
    await gate.enter(5)
    late = asyncio.create_task(gate.enter(5))
    await turn()
    [waiter] = gate._waiters
    _expire(waiter)  # its deadline timer fires ...
    late.cancel()  # ... and, before it could resume, the request is cancelled
    with pytest.raises(asyncio.CancelledError):
        await late
    with pytest.raises(TimeoutError):
        await gate.enter(0.01)  # still one place, and it is still held
