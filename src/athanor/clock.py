"""One clock for the whole lab: every wait, poll and timeout is in lab seconds.

Real hardware runs on :class:`WallClock` (lab time is wall time). The simulated lab runs
on :class:`ScaledClock`, where lab seconds pass ``time_scale`` times faster than wall
seconds, so that a four-hour anneal takes seconds. Emulators and clients that share a
clock (or the same ``epoch`` and ``time_scale``, across processes) agree on lab time.
:class:`ManualClock` only moves when told to (or when someone sleeps on it): for tests
and dry runs that need exact, repeatable time.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What every part of the lab needs from a clock; all values in lab seconds."""

    time_scale: float
    grace: float  # wall seconds a Deadline lasts at least

    def now(self) -> float:
        """Monotonic lab time in seconds."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` of lab time."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Await ``seconds`` of lab time (for asyncio servers)."""
        ...

    def to_wall(self, seconds: float) -> float:
        """Wall seconds that ``seconds`` of lab time take."""
        ...


#: Wall seconds any sleep on a running clock lasts at least. Polls written in lab time
#: (a furnace read every 30 lab s) would otherwise spin thousands of times a second at
#: high time scales and starve the simulation they wait on; sleeping a little longer
#: than asked is always allowed.
MIN_SLEEP = 0.005


def _check_duration(seconds: float) -> float:
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a duration must be a finite number of seconds >= 0, got {seconds!r}")
    return float(seconds)


class ScaledClock:
    """Lab time that runs ``time_scale`` times faster than wall time.

    Parameters
    ----------
    time_scale
        Lab seconds per wall second (3600 makes an hour take a second). Must be > 0.
    epoch
        Wall time (``time.time()``) at which lab time was 0. Processes that share
        ``epoch`` and ``time_scale`` share lab time. Defaults to now.
    grace
        Wall seconds a :class:`Deadline` on this clock lasts at least. At 3600× a
        process busy for one second (a model fit) lets an hour of lab time pass; a
        timeout should not fire for that. Default: 0 at scale 1, else 2 s.
    """

    def __init__(
        self, time_scale: float = 1.0, epoch: float | None = None, grace: float | None = None
    ) -> None:
        if not (math.isfinite(time_scale) and time_scale > 0):
            raise ValueError(f"time_scale must be a finite number > 0, got {time_scale!r}")
        self.time_scale = float(time_scale)
        self.epoch = time.time() if epoch is None else float(epoch)
        self.grace = (0.0 if time_scale == 1 else 2.0) if grace is None else _check_duration(grace)

    def now(self) -> float:
        return (time.time() - self.epoch) * self.time_scale

    def to_wall(self, seconds: float) -> float:
        return _check_duration(seconds) / self.time_scale

    def sleep(self, seconds: float) -> None:
        time.sleep(max(self.to_wall(seconds), MIN_SLEEP))

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(self.to_wall(seconds), MIN_SLEEP))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(time_scale={self.time_scale:g}, epoch={self.epoch:.3f})"


class WallClock(ScaledClock):
    """Lab time is wall time: the clock of a lab with real instruments."""

    def __init__(self, epoch: float | None = None) -> None:
        super().__init__(1.0, epoch)

    def __repr__(self) -> str:
        return f"WallClock(epoch={self.epoch:.3f})"


class ManualClock:
    """A clock that moves only by :meth:`advance` or by someone sleeping on it.

    ``sleep`` advances lab time at once and returns, so code that waits on this clock
    runs as fast as it computes, with exactly repeatable times. Meant for one thread of
    control (tests, plan dry runs, benchmark simulations); thread-safe for reading.
    """

    time_scale = math.inf
    grace = 0.0

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move lab time forward by ``seconds``; returns the new time."""
        seconds = _check_duration(seconds)
        with self._lock:
            self._now += seconds
            return self._now

    def to_wall(self, seconds: float) -> float:
        _check_duration(seconds)
        return 0.0

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        self.advance(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now():g})"


@dataclass
class Deadline:
    """A timeout in lab time: ``Deadline(clock, 30.0)`` expires 30 lab seconds from now,
    and never sooner than the clock's ``grace`` in wall seconds."""

    clock: Clock
    timeout: float

    def __post_init__(self) -> None:
        self.timeout = _check_duration(self.timeout)
        self.start = self.clock.now()
        self._wall_start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return self.clock.now() - self.start

    @property
    def remaining(self) -> float:
        """Lab seconds left (during the wall-time grace: the lab time the grace lasts)."""
        left = self.timeout - self.elapsed
        if left > 0:
            return left
        grace_left = getattr(self.clock, "grace", 0.0) - (time.monotonic() - self._wall_start)
        return max(0.0, grace_left * self.clock.time_scale) if grace_left > 0 else 0.0

    @property
    def expired(self) -> bool:
        if self.elapsed < self.timeout:
            return False
        return time.monotonic() - self._wall_start >= getattr(self.clock, "grace", 0.0)

    def wall_remaining(self) -> float:
        """Wall seconds left: what to hand to a socket or serial port timeout."""
        return self.clock.to_wall(self.remaining)


def wait_until(
    clock: Clock,
    condition: Callable[[], bool],
    timeout: float,
    poll: float,
) -> bool:
    """Poll ``condition()`` every ``poll`` lab seconds until true or ``timeout`` passes.

    Returns whether the condition became true. Both durations are in lab seconds.
    """
    poll = _check_duration(poll)
    deadline = Deadline(clock, timeout)
    while True:
        if condition():
            return True
        if deadline.expired:
            return False
        clock.sleep(min(poll, deadline.remaining))


def make_clock(time_scale: float, epoch: float | None = None) -> ScaledClock:
    """The clock a lab config asks for: wall time at scale 1, else a scaled clock."""
    return WallClock(epoch) if time_scale == 1 else ScaledClock(time_scale, epoch)
