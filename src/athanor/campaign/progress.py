"""What the operator sees: progress, furnace readings (cached) and why experiments wait.

Furnace temperatures come from the furnace devices' signals, read at most once every
``interval`` lab seconds per furnace however often the view refreshes, so a slow serial
line shared by several controllers is not flooded by the scheduler loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from athanor.clock import Clock
from athanor.protocols.contract import holder_experiment
from athanor.resources import ResourcePool

#: Lab seconds between two readings of one furnace for the live view.
READING_INTERVAL = 5.0


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


class FurnaceReadings:
    """Each furnace's temperature from its device, read at most every ``interval`` lab s."""

    def __init__(self, furnaces: dict[str, Any], clock: Clock, interval: float = READING_INTERVAL):
        self.furnaces, self.clock, self.interval = furnaces, clock, interval
        self._last: dict[str, tuple[float, float | None]] = {}  # name -> (lab time, °C)

    def temperature(self, name: str) -> float | None:
        now = self.clock.now()
        read_at, value = self._last.get(name, (-float("inf"), None))
        if now - read_at >= self.interval:
            try:
                value = float(self.furnaces[name].temperature.get())
            except Exception:  # a furnace that does not answer shows as unknown
                value = None
            self._last[name] = (now, value)
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
        what = describe.get(want, " or ".join(want))
        reasons[number] = f"waiting for {what}" + (f" ({', '.join(busy)})" if busy else "")
    return reasons


def _who(holder: str) -> str:
    number = holder_experiment(holder)
    return holder if number is None else f"#{number}"
