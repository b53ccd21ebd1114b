"""Kills for the faults benchmark: ``athanor run`` killed with SIGKILL at a chosen moment
on a lab that outlives it (``athanor sim serve``), then ``athanor resume``.

The moments are read off the store the campaign writes: its first proposal, a furnace
annealing, a sample measuring, half the budget analysed, the last experiment running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from athanor.drivers.eurotherm import Eurotherm
from athanor.store import Experiment, ExperimentState, Store

S = ExperimentState
EXE = str(Path(sys.executable).parent / "athanor")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
WAIT = 300.0  # wall seconds a campaign may take to reach a moment or to finish

Moment = Callable[[list[Experiment], int], bool]
#: moment -> whether the campaign's experiments (and its budget) have reached it
MOMENTS: dict[str, Moment] = {
    "first proposal": lambda exps, budget: bool(exps),
    "annealing": lambda exps, budget: any(e.state == S.RUNNING for e in exps),
    "measuring": lambda exps, budget: any(e.state == S.MEASURING for e in exps),
    "half analysed": lambda exps, budget: _analysed(exps) >= budget // 2,
    "last running": lambda exps, budget: _analysed(exps) >= budget - 1,
}


def _analysed(experiments: list[Experiment]) -> int:
    return sum(e.state == S.ANALYSED for e in experiments)


@contextmanager
def served_lab(lab: Path) -> Iterator[Path]:
    """``athanor sim serve`` of ``lab`` in a process of its own; yields the lab it wrote."""
    written = lab.with_name("served.yaml")
    process = subprocess.Popen(
        [EXE, "sim", "serve", str(lab), "--write-lab", str(written)], cwd=lab.parent,
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not written.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if not written.exists():
            raise RuntimeError("athanor sim serve never wrote its lab")
        yield written
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def furnace_modes(lab: Path) -> str:
    """The furnaces not in standby, read over their own wires ("all standby" if none)."""
    unsafe = []
    for name, inst in yaml.safe_load(lab.read_text())["instruments"].items():
        if inst["kind"] == "furnace":
            driver = Eurotherm(inst["connection"], unit=inst["unit"], model=inst["model"])
            mode = driver.mode()
            driver.close()
            unsafe += [f"{name} {mode}"] if mode != "standby" else []
    return ", ".join(unsafe) or "all standby"


def kill_and_resume(campaign: Path, served: Path, moment: str, budget: int) -> list[str]:
    """Run ``campaign``, SIGKILL it at ``moment``, resume it; returns the table row."""
    name = yaml.safe_load(campaign.read_text())["name"]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "lab.db"
        start = time.perf_counter()
        process = subprocess.Popen(
            [EXE, "run", str(campaign), "--db", str(db), "--no-live"], cwd=campaign.parent,
            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        reached = _wait_for(db, name, MOMENTS[moment], budget, process)
        process.kill()
        process.wait(30)
        resumed = subprocess.run(
            [EXE, "resume", name, "--db", str(db), "--no-live"], cwd=campaign.parent, env=ENV,
            capture_output=True, text=True, timeout=WAIT,
        )  # fmt: skip
        wall = time.perf_counter() - start
        store = Store(db, "read")
        experiments = store.experiments(name)
        status = store.campaign(name).status
        store.close()
    numbers = [e.number for e in experiments]
    twice = len(numbers) - len(set(numbers))
    left = [e for e in experiments if e.state.active]
    interrupted = [e for e in experiments if "interrupted" in e.reason]
    return [
        f"kill -9 at {moment}" + ("" if reached else " (never reached)"),
        f"{status} (rc {resumed.returncode})", str(_analysed(experiments)),
        str(sum(e.state == S.FAILED for e in experiments)), str(len(interrupted)),
        str(twice + len(left)), furnace_modes(served), f"{wall:.0f}",
    ]  # fmt: skip


def _wait_for(
    db: Path, name: str, moment: Moment, budget: int, process: subprocess.Popen[bytes]
) -> bool:
    deadline = time.monotonic() + WAIT
    while process.poll() is None and time.monotonic() < deadline:
        if db.exists():
            store = Store(db, "read")
            try:
                if store.campaigns() and moment(store.experiments(name), budget):
                    return True
            finally:
                store.close()
        time.sleep(0.05)
    return False
