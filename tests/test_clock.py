import asyncio
import time

import pytest

from athanor.clock import Deadline, ManualClock, ScaledClock, WallClock, make_clock, wait_until


def test_scaled_clock_runs_faster_than_wall_time():
    clock = ScaledClock(3600)
    start_lab, start_wall = clock.now(), time.monotonic()
    clock.sleep(36)  # 36 lab seconds = 10 ms of wall time
    wall = time.monotonic() - start_wall
    lab = clock.now() - start_lab
    assert wall < 0.5
    assert lab == pytest.approx(wall * 3600, rel=0.5)
    assert lab >= 36


def test_clocks_with_the_same_epoch_agree_on_lab_time():
    a = ScaledClock(1000)
    b = ScaledClock(1000, epoch=a.epoch)
    assert abs(a.now() - b.now()) < 5  # 5 lab seconds = 5 ms wall


def test_async_sleep_is_in_lab_time():
    clock = ScaledClock(10_000)
    before = clock.now()
    asyncio.run(clock.asleep(50))
    assert clock.now() - before >= 50


def test_wall_clock_is_scale_one():
    clock = WallClock()
    assert clock.time_scale == 1
    assert clock.to_wall(2.5) == 2.5
    assert isinstance(make_clock(1), WallClock)
    assert make_clock(60).time_scale == 60


@pytest.mark.parametrize("scale", [0, -1, float("nan"), float("inf")])
def test_nonsense_time_scale_is_refused(scale):
    with pytest.raises(ValueError, match="time_scale"):
        ScaledClock(scale)


def test_negative_sleep_is_refused():
    with pytest.raises(ValueError, match="duration"):
        ScaledClock(10).sleep(-1)


def test_manual_clock_moves_only_when_told():
    clock = ManualClock()
    assert clock.now() == 0
    clock.sleep(14_400)  # a four-hour anneal, instantly
    assert clock.now() == 14_400
    assert clock.advance(60) == 14_460


def test_deadline_counts_lab_time():
    clock = ManualClock()
    deadline = Deadline(clock, 30)
    assert not deadline.expired and deadline.remaining == 30
    clock.advance(29)
    assert deadline.remaining == pytest.approx(1)
    clock.advance(1)
    assert deadline.expired and deadline.remaining == 0


def test_wait_until_polls_in_lab_time_and_gives_up_at_the_timeout():
    clock = ManualClock()
    target = 125.0
    assert wait_until(clock, lambda: clock.now() >= target, timeout=600, poll=10)
    assert target <= clock.now() < target + 10
    clock = ManualClock()
    assert not wait_until(clock, lambda: False, timeout=60, poll=7)
    assert clock.now() == pytest.approx(60)


def test_a_lab_timeout_lasts_the_clocks_wall_grace_so_a_busy_cpu_is_no_timeout():
    clock = ScaledClock(1e6, grace=0.2)  # a millisecond of wall time is 17 lab minutes
    deadline = Deadline(clock, 60)
    time.sleep(0.01)
    assert deadline.elapsed > 60
    assert not deadline.expired and deadline.remaining > 0
    time.sleep(0.2)
    assert deadline.expired and deadline.remaining == 0


def test_grace_defaults_to_none_on_wall_time_and_two_seconds_when_scaled():
    assert WallClock().grace == 0
    assert ScaledClock(3600).grace == 2.0
