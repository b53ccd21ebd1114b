import threading

import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps

from athanor.clock import ManualClock
from athanor.resources import ResourceError, ResourceGate, ResourcePool


@pytest.fixture
def pool():
    return ResourcePool({"furnace": ["furnace1", "furnace2"], "xrd": ["xrd"]}, clock=ManualClock())


def test_any_free_furnace_then_wait_when_all_are_busy(pool):
    assert pool.try_acquire("furnace", "exp-1") == "furnace1"
    assert pool.try_acquire("furnace", "exp-2") == "furnace2"
    assert pool.try_acquire("furnace", "exp-3") is None
    pool.release("furnace1", "exp-1")
    assert pool.try_acquire("furnace", "exp-3") == "furnace1"


def test_a_holder_asking_again_keeps_its_instrument(pool):
    assert pool.try_acquire("xrd", "exp-1") == "xrd"
    assert pool.try_acquire("xrd", "exp-1") == "xrd"
    assert len(pool.log) == 1


def test_waiting_request_gets_the_instrument_when_released(pool):
    pool.try_acquire("xrd", "exp-1")
    got = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire("xrd", "exp-2", timeout=5)))
    waiter.start()
    pool.release("xrd", "exp-1")
    waiter.join(5)
    assert got == ["xrd"] and pool.holder("xrd") == "exp-2"


def test_timeout_and_unknown_requests(pool):
    pool.try_acquire("xrd", "exp-1")
    with pytest.raises(TimeoutError, match="stayed busy"):
        pool.acquire("xrd", "exp-2", timeout=0.05)
    with pytest.raises(ResourceError, match="kinds: furnace, xrd"):
        pool.try_acquire("oven", "exp-1")


def test_lease_log_gives_busy_time_in_lab_time(pool):
    clock = pool.clock
    with pool.lease("xrd", "exp-1"):
        clock.advance(480)
    clock.advance(100)
    with pool.lease("xrd", "exp-2"):
        clock.advance(20)
    assert pool.busy_time("xrd") == pytest.approx(500)


def test_plan_waits_for_a_lease_as_a_bluesky_status(pool):
    pool.try_acquire("xrd", "other")
    gate = ResourceGate(pool, "xrd")
    RE = RunEngine({}, context_managers=[])
    timer = threading.Timer(0.2, pool.release, args=("xrd", "other"))
    timer.start()

    def plan():
        yield from bps.mv(gate, "exp-9")
        assert pool.holder("xrd") == "exp-9"
        yield from bps.mv(gate, None)

    RE(plan())
    assert pool.holder("xrd") is None
