import asyncio

import pytest

from simulator.core.clock import SimulationStalled, VirtualTimeLoop, Watchdogs, run_virtual


def test_time_jumps_to_next_timer_without_waiting() -> None:
    async def main() -> tuple[float, list[tuple[float, int]]]:
        loop = asyncio.get_running_loop()
        seen: list[tuple[float, int]] = []

        async def worker(i: int) -> None:
            for _ in range(3):
                await asyncio.sleep(3600)
                seen.append((loop.time(), i))

        await asyncio.gather(*(worker(i) for i in range(3)))
        return loop.time(), seen

    now, seen = run_virtual(main())
    assert now == 3 * 3600
    # same instant: callbacks run in the order they were scheduled
    assert seen == [(t * 3600.0, i) for t in (1, 2, 3) for i in range(3)]


def test_timers_at_same_instant_run_fifo() -> None:
    loop = VirtualTimeLoop()
    order: list[int] = []
    for i in range(50):
        loop.call_at(10.0, order.append, i)
    loop.call_at(10.0, loop.stop)
    loop.run_forever()
    loop.close()
    assert order == list(range(50))


def test_timeout_and_cancel_follow_virtual_time() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(30):
                await asyncio.sleep(86400)
        return loop.time()

    assert run_virtual(main()) == 30.0


def test_stall_is_reported_not_hung() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_future()  # nobody will ever set it

    with pytest.raises(SimulationStalled):
        run_virtual(main())


def test_watchdogs_fire_no_earlier_than_deadline_and_within_granularity() -> None:
    async def main() -> list[tuple[float, float]]:
        loop = asyncio.get_running_loop()
        dogs = Watchdogs(loop, granularity=1.0)
        fired: list[tuple[float, float]] = []
        for k in range(20):
            loop.call_at(k * 0.3, lambda: dogs.after(60.0, lambda d=loop.time() + 60.0:
                                                    fired.append((d, loop.time()))))
        await asyncio.sleep(100)
        return fired

    fired = run_virtual(main())
    assert len(fired) == 20
    for deadline, at in fired:
        assert deadline <= at <= deadline + 1.0 + 1e-9
