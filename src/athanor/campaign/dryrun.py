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
from typing import Any

from bluesky.simulators import RunEngineSimulator
from bluesky.utils import Msg
from ophyd.status import Status

from athanor import profile
from athanor.clock import ManualClock
from athanor.devices.diffractometer import Diffractometer
from athanor.devices.furnace import Furnace
from athanor.devices.transfer import Move, Prepare, SampleTransfer
from athanor.lab import Lab
from athanor.lab_config import LabConfig, SimulationConfig
from athanor.protocols.context import ExperimentContext
from athanor.protocols.registry import check_arguments, resolve
from athanor.resources import ResourcePool
from athanor.simulators.lab import SimulatedLab
from athanor.simulators.transfer import TransferSimSettings
from athanor.simulators.xrd_pattern import ScanProgram

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
    """The same lab on loopback emulators, with its own limits and settings."""
    data = lab.model_dump()
    for inst in data["instruments"].values():
        kind = inst["kind"]
        inst["connection"] = "pty://" if kind == "spectrometer" else (
            "modbus-tcp://127.0.0.1:0" if kind == "furnace" else "tcp://127.0.0.1:0"
        )  # fmt: skip
        if kind == "transfer":
            inst["model"] = "simulated"
    data["simulation"] = data.get("simulation") or SimulationConfig().model_dump()
    return LabConfig.model_validate(data)


@contextmanager
def twin_lab(lab: LabConfig) -> Iterator[Lab]:
    """Devices over a simulated twin of ``lab`` (on a clock that never moves by itself)."""
    clock = ManualClock()
    with SimulatedLab(simulated_twin(lab), clock) as sim:
        connected = Lab.connect(sim.start(), clock)
        try:
            yield connected
        finally:
            connected.close()


def _duration(msg: Msg, move_s: float, prepare_s: float) -> tuple[str, float]:
    obj, value = msg.obj, msg.args[0] if msg.args else None
    if isinstance(obj, Furnace) and value is not None:
        segments = obj.check(value)
        return _describe_profile(segments), profile.duration(segments, AMBIENT_C)
    if isinstance(obj, SampleTransfer) and isinstance(value, Move):
        return f"{value.sample_id}: {value.source} → {value.target}", move_s
    if isinstance(obj, SampleTransfer) and isinstance(value, Prepare):
        return f"weigh {value.sample_id} {value.recipe}", prepare_s
    return ("" if value is None else str(value)), 0.0


def _describe_profile(segments: tuple[profile.Segment, ...]) -> str:
    parts = []
    for s in segments:
        if isinstance(s, profile.Ramp):
            parts.append(f"ramp {s.rate:g} °C/min → {s.target:g} °C")
        elif isinstance(s, profile.Dwell):
            parts.append(f"dwell {s.minutes / 60:g} h")
        else:
            parts.append(f"step → {s.target:g} °C")
    return ", ".join(parts)


def dry_run(plan_name: str, params: dict[str, Any], lab: LabConfig) -> DryRun:
    """Simulate ``plan_name`` with ``params`` on a twin of ``lab``.

    Raises
    ------
    ProtocolError
        Unknown plan or parameters it does not take.
    LimitError, ValueError
        A request outside a limit, before any message.
    """
    plan = resolve(plan_name)
    check_arguments(plan, params, f"plan {plan_name!r}")
    with twin_lab(lab) as connected:
        transfer = TransferSimSettings()
        pool = ResourcePool(
            {"furnace": list(connected.furnaces)}
            | {n: [n] for n in (*connected.diffractometers, *connected.spectrometers)},
            connected.clock,
        )
        furnace = next(iter(connected.furnaces.values())).twin()
        ctx = ExperimentContext(
            campaign="dry-run", experiment_id=0, number=1, sample_id="dry-run-001",
            furnace=furnace,
            diffractometer=next(iter(connected.diffractometers.values())),
            spectrometer=next(iter(connected.spectrometers.values())),
            transfer=next(iter(connected.transfers.values())), pool=pool,
        )  # fmt: skip
        simulator = RunEngineSimulator()
        done = Status(done=True, success=True)
        simulator.add_handler(("set", "trigger"), lambda msg: done)
        result = DryRun(plan_name)
        for msg in simulator.simulate_plan(plan(ctx, **params)):
            if msg.command in ("set", "trigger", "open_run", "close_run", "checkpoint"):
                name = getattr(msg.obj, "name", "") if msg.obj is not None else ""
                if msg.command == "open_run":
                    name = str(msg.kwargs.get("plan_name", ""))
                value, seconds = _duration(msg, transfer.move_time_s, transfer.prepare_time_s)
                if msg.command == "trigger" and isinstance(msg.obj, Diffractometer):
                    program = msg.obj.program.get()
                    value, seconds = program, ScanProgram.parse(program).duration_s
                result.steps.append(Step(msg.command, name, value, seconds))
        return result
