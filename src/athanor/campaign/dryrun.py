"""Dry-running a protocol plan: its steps, moves and lab-time duration, before anything heats.

The plan runs in Bluesky's :class:`~bluesky.simulators.RunEngineSimulator` over devices
of a simulated twin of the lab (the lab's own limits apply; nothing physical happens,
no message is executed). Limit violations are raised by the plan before its first
message; the predicted duration adds up the furnace profiles, scan programs and robot
moves the plan asks for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bluesky.simulators import RunEngineSimulator
from bluesky.utils import Msg
from ophyd.status import Status

from athanor.campaign.roles import Roles
from athanor.clock import ManualClock
from athanor.config import check_plan
from athanor.kinds import KINDS
from athanor.lab import Lab, simulate
from athanor.lab_config import LabConfig, SimulationConfig
from athanor.protocols.parameters import check_values
from athanor.protocols.requests import requests_of
from athanor.resources import ResourceGate

AMBIENT_C = 25.0


@dataclass
class Step:
    """One message of the plan that does something: a move, a trigger, a run boundary."""

    command: str
    target: str
    value: str = ""
    lab_seconds: float = 0.0


@dataclass
class DryRun:
    plan: str
    steps: list[Step] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Predicted lab seconds (instruments used one after another, as one plan does)."""
        return sum(s.lab_seconds for s in self.steps)


def simulated_twin(lab: LabConfig) -> LabConfig:
    """The same lab on loopback emulators, with its own limits and settings; each
    diffractometer's folder is a relative one (named after it) in the twin's root."""
    data = lab.model_dump()
    for name, inst in data["instruments"].items():
        inst["connection"] = KINDS[inst["kind"]].twin_connection
        if inst["kind"] == "transfer":  # a person's hands are simulated by the robot
            inst["model"] = "simulated"
        if inst["kind"] == "diffractometer":  # never the real instrument's folder
            inst["exchange_dir"] = name
    data["simulation"] = data.get("simulation") or SimulationConfig().model_dump()
    return LabConfig.model_validate(data)


@contextmanager
def twin_lab(lab: LabConfig) -> Iterator[Lab]:
    """Devices over a simulated twin of ``lab`` (on a clock that never moves by itself),
    whose files go to a temporary folder."""
    clock = ManualClock()
    with (
        TemporaryDirectory(prefix="athanor-dry-run-") as root,
        simulate(simulated_twin(lab), clock, root=Path(root)) as sim,
    ):
        connected = Lab.connect(sim.start(), clock)
        try:
            yield connected
        finally:
            connected.close()


def _estimate(msg: Msg, lab: LabConfig) -> tuple[str, float]:
    """What a set or trigger does and how many lab seconds it takes, by its device's kind."""
    value = msg.args[0] if msg.args else None
    instrument = lab.instruments.get(getattr(msg.obj, "name", ""))
    estimate = KINDS[instrument.kind].estimate(msg.obj, value) if instrument else None
    return estimate or (("" if value is None else str(value)), 0.0)


def _grant(msg: Msg) -> Status:
    status = msg.obj.set(*msg.args)
    status.wait(5)
    return status


def dry_run(plan_name: str, params: dict[str, Any], lab: LabConfig) -> DryRun:
    """Simulate ``plan_name`` with ``params`` on a twin of ``lab``.

    ``params`` are checked as a campaign's are (:func:`~athanor.config.check_plan`,
    :func:`~athanor.protocols.parameters.check_values`), text converted to the
    parameters' types.

    Raises
    ------
    ArgumentError
        A value the plan does not take on this lab.
    PlanError
        Unknown plan, parameters it does not take, requests the lab cannot serve.
    LimitError, ValueError
        A request outside a limit, before any message.
    """
    plan = check_plan(plan_name, params, lab, f"plan {plan_name!r}")
    params = check_values(plan, params, lab)
    with twin_lab(lab) as connected:
        roles = Roles(requests_of(plan), connected)
        pool = roles.pool(connected)
        ctx = roles.context(
            pool, roles.starters[0], campaign="dry-run", experiment_id=0, number=1,
            sample_id="dry-run-001",
        )  # fmt: skip
        simulator = RunEngineSimulator()
        done = Status(done=True, success=True)
        simulator.add_handler(("set", "trigger"), lambda msg: done)
        # Requests for instruments are granted as the plan makes them (nothing else waits).
        simulator.add_handler("set", _grant, lambda msg: isinstance(msg.obj, ResourceGate))
        result = DryRun(plan_name)
        for msg in simulator.simulate_plan(plan(ctx, **params)):
            if msg.command in ("set", "trigger", "open_run", "close_run", "checkpoint"):
                name = getattr(msg.obj, "name", "") if msg.obj is not None else ""
                if msg.command == "open_run":
                    name = str(msg.kwargs.get("plan_name", ""))
                value, seconds = _estimate(msg, lab)
                result.steps.append(Step(msg.command, name, value, seconds))
        return result
