"""What the operator sees: progress, furnace readings (cached) and why experiments wait.

Furnace temperatures come from the furnace devices' signals, read at most once every
``interval`` lab seconds per furnace however often the view refreshes, so a slow serial
line shared by several controllers is not flooded by the scheduler loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from athanor.campaign.roles import Roles
from athanor.clock import Clock
from athanor.protocols.contract import holder_experiment
from athanor.resources import ResourcePool
from athanor.store import Experiment

#: Lab seconds between two readings of one furnace for the live view, and wall seconds
#: at least, however fast the lab clock runs.
READING_INTERVAL = 5.0
READING_INTERVAL_WALL = 0.2
#: Wall seconds before a furnace that did not answer is read again (each try of a
#: silent instrument costs its driver's timeouts).
SILENT_BACKOFF = 10.0


@dataclass
class Progress:
    """What the live display shows."""

    campaign: str
    max_experiments: int
    counts: dict[str, int] = field(default_factory=dict)
    furnaces: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    best: tuple[float, dict[str, Any]] | None = None
    lab_time: float = 0.0
    wall_time: float = 0.0
    waiting: dict[int, str] = field(default_factory=dict)  # experiment number -> why
    activity: str = ""  # what the campaign itself waits for (planner, approval, pause)


class Activity:
    """What the campaign itself waits for (the planner, an answer, a pause), or ""."""

    def __init__(self) -> None:
        self.now = ""

    @contextmanager
    def doing(self, what: str) -> Iterator[None]:
        """``what`` is the activity while the block runs."""
        self.now = what
        try:
            yield
        finally:
            self.now = ""


class FurnaceReadings:
    """Each furnace's temperature from its device, read at most every ``interval`` lab s
    (and :data:`READING_INTERVAL_WALL` wall s); one that did not answer shows as unknown
    and is read again only after :data:`SILENT_BACKOFF` wall s."""

    def __init__(self, furnaces: dict[str, Any], clock: Clock, interval: float = READING_INTERVAL):
        self.furnaces, self.clock, self.interval = furnaces, clock, interval
        self._last: dict[str, tuple[float, float, float | None]] = {}  # (lab, wall due, °C)

    def temperature(self, name: str) -> float | None:
        now, wall = self.clock.now(), time.monotonic()
        read_at, wall_due, value = self._last.get(name, (-float("inf"), -float("inf"), None))
        if now - read_at >= self.interval and wall >= wall_due:
            try:
                value = float(self.furnaces[name].temperature.get())
                wall_due = wall + READING_INTERVAL_WALL
            except Exception:
                value, wall_due = None, wall + SILENT_BACKOFF
            self._last[name] = (now, wall_due, value)
        return value

    def table(self, pool: ResourcePool) -> dict[str, tuple[str, float | None]]:
        """furnace -> (experiment number holding it or "idle", °C)."""
        rows = {}
        for name in self.furnaces:
            holder = pool.holder(name)
            number = holder_experiment(holder) if holder else None
            rows[name] = (str(number) if number is not None else "idle", self.temperature(name))
        return rows


def waiting_for(pool: ResourcePool, describe: dict[tuple[str, ...], str]) -> dict[int, str]:
    """experiment number -> what it waits for, from the pool's waiting requests.

    ``describe`` names each request by the instruments it may take (``"a diffractometer"``).
    """
    reasons = {}
    for request in pool.waiting():
        number = holder_experiment(request.holder)
        if number is None:
            continue
        want = request.want if isinstance(request.want, tuple) else (request.want,)
        busy = sorted({f"{name} has {_who(h)}" for name in want if (h := pool.holder(name))})
        busy += _out_of_service(pool, want)
        what = describe.get(want, " or ".join(want))
        reasons[number] = f"waiting for {what}" + (f" ({', '.join(busy)})" if busy else "")
    return reasons


def waiting_reasons(
    experiments: list[Experiment],
    *,
    running: Collection[int],
    paused: bool,
    pool: ResourcePool,
    roles: Roles,
    safe_to_load: Callable[[str], bool],
) -> dict[int, str]:
    """experiment number -> why it is not running ("" for one that runs).

    ``running`` holds the ids of the experiments in flight; an active experiment not
    among them waits for an instrument of the first role (or for room in flight).
    """
    in_pool = waiting_for(pool, roles.descriptions)
    kind = roles.requests[roles.first].kind
    reasons = {}
    for exp in experiments:
        if not exp.state.active:
            continue
        if paused:
            reasons[exp.number] = "paused"
        elif exp.id in running:
            reasons[exp.number] = in_pool.get(exp.number, "")
        else:
            free = pool.free(roles.starters)
            hot = [name for name in free if not safe_to_load(name)]
            out = ", ".join(_out_of_service(pool, roles.starters))
            reasons[exp.number] = (
                f"no free {kind}" + (f" ({out})" if out else "")
                if not free
                else f"no {kind} safe to load ({', '.join(hot)} still hot)"
                if len(hot) == len(free)
                else f"{len(running)} experiments in flight, as many as this lab takes"
            )
    return reasons


def _out_of_service(pool: ResourcePool, names: Collection[str]) -> list[str]:
    out = pool.out_of_service()
    return [f"{name} out of service: {out[name]}" for name in names if name in out]


def _who(holder: str) -> str:
    number = holder_experiment(holder)
    return holder if number is None else f"#{number}"
