"""Faults: what a campaign does when an instrument fails, one fault at a time.

A campaign of 8 experiments runs on the in-process simulated lab with one emulator's
fault switch thrown: ``permanent`` (on from the start), ``intermittent`` (on for each
20-lab-minute slot with chance 0.3, seeded) or ``outage`` (on from lab hour 1 to lab
hour 4). Printed per run: how the campaign ended (finished, or paused with its reason),
experiments analysed, failed as recipes, retried after an instrument fault, lost or
numbered twice (must be 0), the budget spent on instrument faults (experiments counted
against the budget although an instrument failed them: must be 0), the furnaces' end
state, and wall time. The same campaign without a fault is the baseline, in the same
run. A second table kills ``athanor run`` with SIGKILL at five moments on a served lab
(:mod:`benchmarks.kills`) and resumes it: how it ended, experiments lost or run twice
(must be 0), and the furnaces' state at the end.
"""

from __future__ import annotations

import logging
import random
import tempfile
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from athanor.campaign.ledger import INSTRUMENT_FAULT
from athanor.campaign.runner import CampaignRunner
from athanor.campaign.session import load_for_run, open_session
from athanor.clock import Clock
from athanor.drivers.errors import (
    ConnectionLost,
    InstrumentFault,
    InstrumentTimeout,
    NotSafe,
    ProtocolError,
)
from athanor.store import ExperimentState, Store
from benchmarks.bench_campaign import campaign_file
from benchmarks.common import console, single_thread_torch, table
from benchmarks.kills import MOMENTS, kill_and_resume, served_lab

S = ExperimentState
INSTRUMENT_ERRORS = (InstrumentFault, InstrumentTimeout, ConnectionLost, ProtocolError, NotSafe)
HOUR = 3600.0

#: fault name -> (instrument, switch on its emulator's ``faults``, value when on)
FAULTS: dict[str, tuple[str, str, Any]] = {
    "xrd fatal": ("xrd", "fatal", "tube failure"),
    "xrd busy": ("xrd", "busy", True),
    "xrd writes no file": ("xrd", "no_file", True),
    "xrd truncated file": ("xrd", "truncated_file", True),
    "uvvis saturation": ("uvvis", "saturation", True),
    "robot gripper fault": ("robot", "gripper_fault", True),
    "robot drops sample": ("robot", "dropped_sample", True),
    "furnace2 sensor break": ("furnace2", "sensor_break", True),
    "furnace2 silent": ("furnace2", "no_reply", True),
}
MODES = ("permanent", "intermittent", "outage")


@dataclass
class Switch:
    """Throws one fault switch by lab time, in a thread of its own."""

    faults: Any
    switch: str
    value: Any
    mode: str
    clock: Clock

    def __post_init__(self) -> None:
        self.off = getattr(self.faults, self.switch)
        self._done = threading.Event()
        self._random = random.Random(0)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def on_at(self, lab: float) -> bool:
        if self.mode == "permanent":
            return True
        if self.mode == "outage":
            return 1 * HOUR <= lab < 4 * HOUR
        return self._random.random() < 0.3

    def _run(self) -> None:
        slot = -1
        while not self._done.wait(0.01):
            now = self.clock.now()
            if self.mode == "intermittent" and int(now // 1200) == slot:
                continue
            slot = int(now // 1200)
            setattr(self.faults, self.switch, self.value if self.on_at(now) else self.off)

    def __enter__(self) -> Switch:
        if self.mode == "permanent":
            setattr(self.faults, self.switch, self.value)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join(5)
        setattr(self.faults, self.switch, self.off)


def run_once(fault: str | None, mode: str, experiments: int, time_scale: float) -> list[str]:
    """One campaign with ``fault`` thrown in ``mode``; returns its table row."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config, lab_config = load_for_run(campaign_file(folder, experiments, time_scale), None)
        db = str(folder / "lab.db")
        with open_session(config, lab_config, db) as session:
            runner = CampaignRunner(config, session.lab, session.store)
            runner.start(lab_config)
            start = time.perf_counter()
            switch: AbstractContextManager[Any] = nullcontext()
            if fault is not None:
                instrument, name, value = FAULTS[fault]
                faults = session.sim.emulators[instrument].faults
                switch = Switch(faults, name, value, mode, session.lab.clock)
            with switch:
                summary = runner.run()
            wall = time.perf_counter() - start
            modes = _furnace_modes(session.lab)
        return _row(fault or "none (baseline)", mode if fault else "", summary, Store(db), modes,
                    wall)  # fmt: skip


def _furnace_modes(lab: Any) -> str:
    modes = {}
    for name in lab.furnaces:
        try:
            modes[name] = lab.drivers[name].mode()
        except Exception:
            modes[name] = "NOT ANSWERING"
    unsafe = [f"{name} {mode}" for name, mode in modes.items() if mode != "standby"]
    return ", ".join(unsafe) or "all standby"


def _row(
    fault: str, mode: str, summary: dict[str, Any], store: Store, furnaces: str, wall: float
) -> list[str]:
    experiments = store.experiments(summary["campaign"])
    numbers = [e.number for e in experiments]
    lost_or_twice = len(numbers) - len(set(numbers)) + (max(numbers, default=0) - len(numbers))
    retried = [e for e in experiments if e.reason.startswith(INSTRUMENT_FAULT)]
    recipe_failed = [e for e in experiments if e.state == S.FAILED]
    by_instrument = [e for e in recipe_failed if _instrument_words(e.reason)]
    ended = summary["status"]
    if summary["paused_for"]:
        ended += f": {summary['paused_for'][:60]}"
    return [
        fault, mode, ended,
        str(len([e for e in experiments if e.state == S.ANALYSED])),
        str(len(recipe_failed)), str(len(retried)), str(lost_or_twice),
        str(len(by_instrument)), furnaces, f"{wall:.0f}",
    ]  # fmt: skip


def _instrument_words(reason: str) -> bool:
    """A failure reason that names an instrument's fault (counted against the budget)."""
    return any(kind.__name__ in reason for kind in INSTRUMENT_ERRORS)


def main(quick: bool = False) -> None:
    single_thread_torch()
    for noisy in ("pymodbus", "bluesky"):  # the table says what failed; as the CLI does
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    experiments, time_scale = (4, 20_000) if quick else (8, 10_000)
    faults = list(FAULTS)[:3] if quick else list(FAULTS)
    modes = ("permanent",) if quick else MODES
    runs = [(None, "")] + [(fault, mode) for fault in faults for mode in modes]
    rows = []
    for number, (fault, mode) in enumerate(runs, start=1):
        console.print(f"[dim]{number}/{len(runs)}: {fault or 'no fault'} {mode}[/]")
        rows.append(run_once(fault, mode, experiments, time_scale))
    columns = ["fault", "mode", "campaign", "analysed", "failed", "retried", "lost/twice",
               "budget on faults", "furnaces at end", "wall s"]  # fmt: skip
    title = f"Faults: a campaign of {experiments} on the simulated lab at {time_scale:g}x"
    note = (
        "failed: experiments failed as recipes (the planner learns from them); retried: "
        "failed by an instrument, run again, not counted; budget on faults: failed "
        "experiments whose reason is an instrument's fault (0 is right). Reproduce: "
        "python -m benchmarks faults"
    )
    table(title, columns, rows, note)
    kills(experiments, time_scale, list(MOMENTS)[1:3] if quick else list(MOMENTS))


def kills(experiments: int, time_scale: float, moments: list[str]) -> None:
    """The kills table: one campaign per moment, killed there, then resumed."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = campaign_file(folder, experiments, time_scale)
        with served_lab(folder / "lab.yaml") as served:
            campaign = yaml.safe_load(path.read_text())
            rows = []
            for number, moment in enumerate(moments, start=1):
                console.print(f"[dim]kill -9 at {moment}[/]")
                # a name of its own: sample ids are the campaign's, the robot keeps them all
                named = {**campaign, "lab": str(served), "name": f"kill-{number}"}
                path.write_text(yaml.safe_dump(named))
                rows.append(kill_and_resume(path, served, moment, experiments))
    columns = ["kill", "after resume", "analysed", "failed", "interrupted", "lost/twice",
               "furnaces at end", "wall s"]  # fmt: skip
    note = (
        "interrupted: experiments the kill cut short, abandoned and run again by "
        "on_interrupt: requeue; lost/twice: experiments left unfinished or numbered twice "
        "after the resume (0 is right)."
    )
    table(f"Kills: a campaign of {experiments} on a served lab at {time_scale:g}x", columns,
          rows, note)  # fmt: skip
