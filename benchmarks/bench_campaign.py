"""Scheduling: makespan and utilisation of a campaign on 4 furnaces and one diffractometer.

The same campaign runs twice on the simulated lab (same seed, same clock speed): with
athanor's scheduler (any free furnace takes the next experiment) and with a synchronous
batch-of-4 schedule (the next four start only when the last four are all done). The
lower bound on the makespan is the busiest instrument group's total busy time divided by
its size. Orchestration overhead is the wall time not spent waiting on instruments (lab
makespan / time scale) or in the planner: the scheduler's own work (bookkeeping,
transactions, starting experiments), timed around it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import yaml

from athanor.campaign.runner import CampaignRunner
from athanor.campaign.session import load_for_run, open_session
from benchmarks.common import console, single_thread_torch, table

ROOT = Path(__file__).parent.parent


def campaign_file(folder: Path, experiments: int, time_scale: float) -> Path:
    """The demo campaign of ``experiments`` on the sim lab at ``time_scale``, in ``folder``."""
    lab = yaml.safe_load((ROOT / "lab_configs" / "sim_lab.yaml").read_text())
    lab["clock"]["time_scale"] = time_scale
    lab["instruments"]["xrd"]["exchange_dir"] = str(folder / "xrd")
    (folder / "lab.yaml").write_text(yaml.safe_dump(lab))
    campaign = yaml.safe_load((ROOT / "lab_configs" / "campaigns" / "demo.yaml").read_text())
    campaign.update(lab="lab.yaml", budget={"max_experiments": experiments})
    campaign["initial_experiments"] = min(campaign["initial_experiments"], experiments)
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(campaign))
    return path


def run_once(experiments: int, time_scale: float, synchronous: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config, lab_config = load_for_run(campaign_file(folder, experiments, time_scale), None)
        with open_session(config, lab_config, str(folder / "lab.db")) as session:
            runner = CampaignRunner(config, session.lab, session.store, synchronous=synchronous)
            runner.start(lab_config)
            start = time.perf_counter()
            summary = runner.run()
            wall = time.perf_counter() - start
            log = runner.pool.log
            furnaces = list(session.lab.furnaces)
    first = min(r.start for r in log)
    last = max(r.end or r.start for r in log)
    makespan = last - first
    busy: dict[str, float] = {}
    for record in log:
        busy[record.resource] = busy.get(record.resource, 0.0) + (record.end or last) - record.start
    furnace_busy = sum(busy[f] for f in furnaces)
    groups = {"furnaces": furnace_busy / len(furnaces)} | {
        name: t for name, t in busy.items() if name not in furnaces
    }
    bound = max(groups.values())
    overhead = summary["orchestration_seconds"]
    return {
        "makespan_h": makespan / 3600,
        "bound_h": bound / 3600,
        "ratio": makespan / bound,
        "furnace_util": furnace_busy / (len(furnaces) * makespan),
        "xrd_util": busy.get("xrd", 0.0) / makespan,
        "wall": wall,
        "planner": summary["planner_seconds"],
        "overhead_per_exp": overhead / experiments,
        "overhead_share": overhead / wall,
        "analysed": summary["counts"].get("analysed", 0),
    }


def main(quick: bool = False) -> None:
    single_thread_torch()
    experiments, scale = (12, 3600.0) if quick else (40, 3600.0)
    console.print(f"{experiments} experiments, 4 furnaces, time scale {scale:g}x ...")
    results = {
        "athanor (any free furnace)": run_once(experiments, scale, synchronous=False),
        "synchronous batches of 4": run_once(experiments, scale, synchronous=True),
    }
    table(
        f"Makespan and utilisation, {experiments}-experiment campaign",
        ["schedule", "makespan (lab h)", "lower bound (lab h)", "makespan / bound",
         "furnace utilisation", "xrd utilisation", "analysed"],
        [[name, r["makespan_h"], r["bound_h"], r["ratio"], f"{r['furnace_util']:.0%}",
          f"{r['xrd_util']:.1%}", r["analysed"]] for name, r in results.items()],
        note="lower bound: the busiest instrument group's busy time over its size "
        "(target: athanor <= 1.15x)",
    )  # fmt: skip
    table(
        "Orchestration overhead (wall time not spent waiting on instruments or the planner)",
        ["schedule", "wall (s)", "planner (s)", "overhead per experiment (s)", "share of wall"],
        [[name, r["wall"], r["planner"], r["overhead_per_exp"], f"{r['overhead_share']:.1%}"]
         for name, r in results.items()],
        note="target: <= 5 % of the wall time of an accelerated run",
    )  # fmt: skip


if __name__ == "__main__":
    main()
