"""What a campaign that died left in the lab, cleared before it goes on.

A lab can outlive the process that drove it (real hardware, ``athanor sim serve``): a
sample registered on the diffractometer, a sample in a furnace or on the bench, a robot
with a latched gripper fault. Before a resumed campaign starts anything, each sample of
an experiment cut short is taken off the diffractometer's books and carried to
``storage`` once the place it lies can be opened (a furnace only after it has cooled to
its handling temperature).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

from athanor.clock import Deadline
from athanor.devices.transfer import Move, SampleTransfer
from athanor.lab import Lab

#: Where samples of experiments cut short are put.
STORAGE = "storage"
#: Places a left-over sample may stay: nothing else waits for them.
AT_REST = {STORAGE, "rack", "lost"}
#: Lab seconds to wait for a furnace to cool, and for a scan in progress to end.
COOL_WAIT = 12 * 3600.0
SCAN_WAIT = 4 * 3600.0
#: Lab seconds between two temperature readings while a furnace cools.
COOL_POLL = 60.0


def clear_leftovers(
    lab: Lab,
    samples: Iterable[str],
    notify: Callable[[str], None] = lambda note: None,
    held: Collection[str] | None = None,
) -> list[str]:
    """Clear what the experiments of ``samples`` left in ``lab``; returns notes on what
    was done and what could not be (a furnace that did not cool, a robot that refused).

    ``held`` limits the exclusive instruments looked at (the diffractometers) to those an
    experiment held when it failed; the default, all of them, suits a campaign picked up
    after it died, when no experiment holds anything.
    """
    samples = list(samples)
    notes: list[str] = []
    for name, xrd in lab.of_kind("diffractometer").items():
        if held is not None and name not in held:
            continue
        for sample in samples:
            try:
                if xrd.clear(sample, SCAN_WAIT):
                    notes.append(f"{name}: sample {sample} left on it, removed")
            except Exception as exc:
                notes.append(f"{name}: could not remove sample {sample}: {exc}")
    for name, robot in lab.of_kind("transfer").items():
        try:
            fault = robot.recover()
            if fault:
                notes.append(f"{name}: {fault} left latched, reset")
            places = {sample: robot.where(sample) for sample in samples}
        except Exception as exc:
            notes.append(f"{name}: could not find the samples {', '.join(samples)}: {exc}")
            continue
        for sample, where in places.items():
            if where is not None and where not in AT_REST:
                notes.append(f"{name}: " + _carry_to_storage(lab, robot, sample, where, notify))
    return notes


def _carry_to_storage(
    lab: Lab, robot: SampleTransfer, sample: str, where: str, notify: Callable[[str], None]
) -> str:
    if where in lab.furnaces and not _cooled(lab, where, notify):
        return f"sample {sample} stays in {where}, which did not cool; take it out by hand"
    try:
        wall_timeout = lab.clock.to_wall(float(robot.move_timeout.get())) + 10.0
        robot.set(Move(sample, where, STORAGE)).wait(wall_timeout)
    except Exception as exc:
        return f"sample {sample} could not be taken out of {where}: {exc}"
    return f"sample {sample} taken from {where} to {STORAGE}"


def _cooled(lab: Lab, name: str, notify: Callable[[str], None]) -> bool:
    """Wait (bounded) until furnace ``name`` may be opened."""
    furnace, clock = lab.furnaces[name], lab.clock
    deadline = Deadline(clock, COOL_WAIT)
    told = False
    while not deadline.expired:
        try:
            temperature = float(furnace.temperature.get())
        except Exception as exc:  # a furnace that does not answer cannot be judged cool
            notify(f"{name} does not answer ({exc}): its sample is left in it")
            return False
        if furnace.safe_to_load(temperature):
            return True
        if not told:
            notify(f"{name} is at {temperature:.0f} °C with a sample left in it: waiting to cool")
            told = True
        clock.sleep(min(COOL_POLL, max(deadline.remaining, 0.0)))
    return False
