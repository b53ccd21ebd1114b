"""Planner benchmark: athanor vs uniform random, scrambled Sobol and Ax ``Client`` defaults.

``python -m benchmarks planner [--quick]`` runs every problem and prints one table each.
Long runs can be split, run side by side and resumed: every run is cached as
``out/bench/planner/<problem>/<method>/seedNN.json`` and not run again::

    python -m benchmarks.bench_planner --seeds 20 --problems branin,hartmann6
    python -m benchmarks.bench_planner --seeds 10-19 --problems composition --methods ax
    python -m benchmarks.bench_planner --report       # tables and plot from the cache

Seeds are paired: seed ``s`` gives every method the same problem noise and worker
durations, and the planner and Sobol the same design. Regret is optimum minus the best
true value among the experiments so far (failed or infeasible ones give nothing).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from benchmarks.common import console, median, percentile, single_thread_torch, table
from benchmarks.planner_methods import BEFORE_ISSUE_18, HAVE_AX, METHODS
from benchmarks.planner_problems import REPO, Problem, datasets, hartmann6, synthetic

OUT = REPO / "out" / "bench"
CACHE = OUT / "planner"
#: Settings of the latency comparison: the planner before issue 18 and its defaults now.
LATENCY_CASES: dict[str, dict[str, Any]] = {"before (#18)": BEFORE_ISSUE_18, "athanor": {}}


def problems(quick: bool) -> tuple[list[Problem], str]:
    found, note = datasets()
    return synthetic(quick) + found, note


def run_one(problem: Problem, method: str, seed: int, budget: int) -> dict[str, Any]:
    """One optimisation run; regret after each completed experiment and latencies.

    With a cost, experiments are issued while the issued ones' costs are under ``budget``
    (and ``cost``: the cost spent after each completed experiment).
    """
    rng = np.random.default_rng(seed)
    most = budget if problem.cost is None else problem.max_experiments
    durations = rng.uniform(0.5, 1.5, size=most)
    noise = np.random.default_rng(1_000_000 + seed)
    runner = METHODS[method](problem, seed)
    running: list[tuple[float, int, dict[str, Any], Any]] = []
    done: list[dict[str, Any]] = []
    regret, spent, failures, issued, now, committed = [], [], 0, 0, 0.0, 0.0
    best = -math.inf
    while True:
        while len(running) < problem.workers and issued < most and committed < budget:
            params, handle = runner.ask([r[2] for r in running])
            running.append((now + durations[issued], issued, params, handle))
            issued += 1
            committed += problem.cost(params) if problem.cost else 1
        if not running:
            break
        running.sort(key=lambda r: (r[0], r[1]))
        now, _, params, handle = running.pop(0)
        outcomes = problem.evaluate(params, noise)
        runner.tell(handle, params, outcomes)
        failures += outcomes is None
        done.append(params)
        if problem.cost:
            spent.append((spent[-1] if spent else 0.0) + problem.cost(params))
        if problem.hypervolume is not None:
            regret.append(problem.optimum - problem.hypervolume(done))
            continue
        value = problem.true(params) if outcomes is not None else None
        if value is not None:
            best = max(best, value)
        regret.append(problem.optimum - best if best > -math.inf else math.nan)
    run = {"regret": regret, "latency": runner.latencies, "failures": failures}
    return {**run, "cost": spent} if problem.cost else run


def seed_path(problem: str, method: str, seed: int) -> Path:
    return CACHE / problem / method / f"seed{seed:02d}.json"


def cached_run(path: Path, budget: int) -> dict[str, Any] | None:
    """The run cached at ``path``, if there is one with this budget."""
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    return saved["run"] if saved["budget"] == budget else None


def run_problem(problem: Problem, methods: list[str], seeds: range, quick: bool) -> dict:
    """Every method on every seed; a full run (not ``quick``) reuses and fills the cache."""
    budget = problem.quick_budget if quick else problem.budget
    result: dict[str, Any] = {"budget": budget, "seeds": len(seeds), "runs": {}}
    with Progress(console=console, transient=True) as progress:
        for method in methods:
            task = progress.add_task(f"{problem.name}: {method}", total=len(seeds))
            runs = []
            for seed in seeds:
                path = seed_path(problem.name, method, seed)
                run = None if quick else cached_run(path, budget)
                if run is None:
                    start = time.perf_counter()
                    run = run_one(problem, method, seed, budget)
                    run["seconds"] = time.perf_counter() - start
                    if not quick:
                        _store(path, budget, seed, run)
                runs.append(run)
                progress.advance(task)
            result["runs"][method] = runs
    return result


def _store(path: Path, budget: int, seed: int, run: dict[str, Any]) -> None:
    """Write whole or not at all, so a stopped benchmark leaves no broken run behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps({"budget": budget, "seed": seed, "run": run}))
    partial.replace(path)


def latency_scenario(quick: bool) -> dict[str, Any]:
    """Suggest 4 with 3 pending, 6 dimensions, 300 (quick: 60) observations.

    Each configuration (the settings before issue 18, and today's defaults) starts from the
    same observations and pending points; its first call (the cold fit) is timed apart.
    """
    from athanor.planner import Planner

    n_obs, calls = (60, 3) if quick else (300, 40)
    out: dict[str, Any] = {"observations": n_obs, "calls": calls, "cases": {}}
    for case, settings in LATENCY_CASES.items():
        rng = np.random.default_rng(0)
        planner = Planner(
            {
                "parameters": [
                    {"name": f"x{i}", "type": "continuous", "low": 0, "high": 1} for i in range(6)
                ]
            },
            [{"name": "f", "goal": "minimize"}],
            settings=settings,
        )

        def observe(x: np.ndarray, planner: Planner = planner, rng: Any = rng) -> None:
            f = hartmann6(x) + 0.01 * rng.normal()
            planner.ingest({f"x{i}": float(v) for i, v in enumerate(x)}, {"f": f})

        for x in rng.random((n_obs, 6)):
            observe(x)
        times = []
        for _ in range(calls + 1):
            pending = [{f"x{i}": float(v) for i, v in enumerate(x)} for x in rng.random((3, 6))]
            start = time.perf_counter()
            batch = planner.suggest(4, pending=pending)
            times.append(time.perf_counter() - start)
            observe(np.array(list(batch[0].params.values())))
        out["cases"][case] = {"first": times[0], "times": times[1:]}
    return out


# ------------------------------------------------------------------------- reporting


def _reached(regret: list[float], threshold: float) -> int | None:
    for i, r in enumerate(regret):
        if not math.isnan(r) and r <= threshold:
            return i + 1
    return None


def _stats(values: list[float]) -> str:
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return "-"
    return f"{median(v):.2g} [{percentile(v, 25):.2g}–{percentile(v, 75):.2g}]"


def _steps(runs: list[dict], threshold: float, budget: int) -> tuple[float, float]:
    """Median experiments to reach the threshold (unreached = budget + 1) and fraction."""
    hits = [_reached(r["regret"], threshold) for r in runs]
    counted = [h if h is not None else budget + 1 for h in hits]
    return median(counted), sum(h is not None for h in hits) / len(hits)


def regret_at_cost(run: dict[str, Any], cost: float) -> float:
    """The regret of a cost run once ``cost`` was spent (nan before its first result)."""
    i = int(np.searchsorted(run["cost"], cost, side="right"))
    return run["regret"][i - 1] if i else math.nan


def cost_to_reach(run: dict[str, Any], threshold: float) -> float | None:
    """The cost spent when the regret first reached ``threshold``; None if never."""
    n = _reached(run["regret"], threshold)
    return None if n is None else run["cost"][n - 1]


def report_cost(problem: Problem, result: dict[str, Any]) -> None:
    """Regret against cost spent, and the cost to reach the threshold, per method."""
    budget, runs = result["budget"], result["runs"]
    reach = {
        m: [c if (c := cost_to_reach(r, problem.threshold)) is not None else math.inf for r in rs]
        for m, rs in runs.items()
    }
    blind = reach.get("athanor")
    rows = []
    for method, mruns in runs.items():
        hits = [c for c in reach[method] if math.isfinite(c)]
        ratio, paired = "-", "-"
        if blind is not None and method != "athanor":
            mine, theirs = median(reach[method]), median(blind)
            if math.isfinite(mine):
                ratio = f"{theirs / mine:.2g}" if math.isfinite(theirs) else f"≥{budget / mine:.2g}"
            cheaper = sum(a < b for a, b in zip(reach[method], blind, strict=False))
            paired = f"{cheaper}/{min(len(blind), len(mruns))}"
        rows.append(
            [
                f"{method} ({len(mruns)})",
                f"{median([len(r['regret']) for r in mruns]):g}",
                _stats([regret_at_cost(r, budget / 2) for r in mruns]),
                _stats([r["regret"][-1] for r in mruns]),
                f"{_stats(hits)} ({len(hits) / len(mruns):.0%})",
                ratio,
                paired,
            ]
        )
    columns = [
        "method (seeds)",
        "experiments",
        f"regret@cost {budget / 2:g}",
        f"regret@cost {budget:g}",
        f"cost: regret≤{problem.threshold:g}",
        "× less cost",
        "cheaper seeds",
    ]
    note = problem.note + (
        "\nregret: median [IQR] once that much cost was spent; cost: median [IQR] spent when "
        "the regret first reached the threshold, over the seeds that reached it (fraction); "
        "× less cost: cost-blind athanor's median cost to the threshold / the method's "
        "(unreached = never; '≥': athanor's median unreached, the budget used instead); "
        "cheaper seeds: paired seeds where the method got there for less than athanor"
    )
    table(f"planner: {problem.name} (budget {budget:g} cost units)", columns, rows, note)


def report(problem: Problem, result: dict[str, Any]) -> None:
    if problem.cost is not None:
        report_cost(problem, result)
        return
    budget, runs = result["budget"], result["runs"]
    half = budget // 2
    random_steps, random_frac = (
        _steps(runs["random"], problem.threshold, budget) if "random" in runs else (None, 0.0)
    )
    rows = []
    for method, mruns in runs.items():
        steps, frac = _steps(mruns, problem.threshold, budget)
        af: object = "-"
        if random_steps and frac >= 0.5:
            # random's unreached runs count as budget+1, so its n is then a lower bound
            af = f"{'≥' if random_frac < 0.5 else ''}{random_steps / steps:.2g}"
        lat = [t for r in mruns for t in r["latency"]]
        latency = "-" if not lat else "/".join(f"{percentile(lat, q):.2f}" for q in (50, 95, 99))
        name = f"{method} ({len(mruns)})"
        if problem.name == "branin_failures":
            name += f" {median([r['failures'] for r in mruns]):g} failed"
        rows.append(
            [
                name,
                _stats([r["regret"][half - 1] for r in mruns]),
                _stats([r["regret"][-1] for r in mruns]),
                f"{steps:g}{'+' if frac < 0.5 else ''} ({frac:.0%})",
                af,
                latency,
            ]
        )
    columns = [
        "method (seeds)",
        f"regret@{half}",
        f"regret@{budget}",
        f"n: regret≤{problem.threshold:g}",
        "AF",
        "latency s p50/95/99",
    ]
    note = problem.note + (
        "\nregret: median [IQR]; n: median experiments to reach it (unreached = budget+1; "
        "'+': under half reached), (fraction of seeds reached); AF: random's n / method's n "
        "('≥': random mostly did not reach it)"
    )
    if problem.random_medians:
        note += _dataset_note(problem, result)
    table(f"planner: {problem.name} (budget {budget})", columns, rows, note)


def _dataset_note(problem: Problem, result: dict[str, Any]) -> str:
    """Acceleration against the README's exact random medians, top 5 % and top 1 %."""
    assert problem.random_medians is not None and problem.top1 is not None
    budget, parts = result["budget"], []
    top1_regret = problem.optimum - problem.top1
    for method, mruns in result["runs"].items():
        s5, f5 = _steps(mruns, problem.threshold, budget)
        s1, f1 = _steps(mruns, top1_regret, budget)
        parts.append(
            f"{method}: top5% median {s5:g} ({f5:.0%} reached) "
            f"AF {problem.random_medians[0] / s5:.2g}"
            f", top1% median {s1:g}{'+' if f1 < 0.5 else ''} ({f1:.0%}) "
            f"AF {problem.random_medians[1] / s1:.2g}"
        )
    return (
        f"\nAF vs the README's exact random medians (top 5 %: {problem.random_medians[0]}, "
        f"top 1 %: {problem.random_medians[1]}):\n  " + "\n  ".join(parts)
    )


def plot(entries: list[tuple[Problem, dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    rows = math.ceil(len(entries) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, (problem, result) in zip(axes.ravel(), entries, strict=False):
        if problem.top1 is not None:
            _plot_pool(ax, problem, result)
        elif problem.cost is not None:
            _plot_cost(ax, problem, result)
        else:
            _plot_regret(ax, problem, result)
        ax.set_title(f"{problem.name} ({result['seeds']} seeds)", fontsize=9)
        ax.set_xlabel("cost spent" if problem.cost else "experiments")
    for ax in axes.ravel()[len(entries) :]:
        ax.axis("off")
    handles = {h.get_label(): h for ax in axes.ravel() for h in ax.get_lines()}
    methods = [m for m in METHODS if m in handles]
    fig.legend([handles[m] for m in methods], methods, loc="lower right", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _color(method: str) -> str:
    """One colour per method in every panel."""
    return f"C{list(METHODS).index(method)}"


def _plot_regret(ax: Any, problem: Problem, result: dict[str, Any]) -> None:
    """Median and IQR of regret against experiments, log scale."""
    for method, runs in result["runs"].items():
        r = np.array([run["regret"] for run in runs], dtype=float)
        r = np.where(np.isnan(r), np.nanmax(r) if np.isfinite(np.nanmax(r)) else 1, r)
        r = np.maximum(r, 1e-6)
        x = np.arange(1, r.shape[1] + 1)
        color = _color(method)
        ax.plot(x, np.median(r, axis=0), color=color, label=method)
        q1, q3 = np.percentile(r, 25, axis=0), np.percentile(r, 75, axis=0)
        ax.fill_between(x, q1, q3, color=color, alpha=0.2)
    ax.set_yscale("log")
    ax.set_ylabel("regret")
    ax.axhline(problem.threshold, color="grey", lw=0.5, ls="--")


def _plot_cost(ax: Any, problem: Problem, result: dict[str, Any]) -> None:
    """Median and IQR of regret against the cost spent, log scale."""
    grid = np.linspace(0, result["budget"], 101)[1:]
    for method, runs in result["runs"].items():
        r = np.array([[regret_at_cost(run, c) for c in grid] for run in runs], dtype=float)
        r = np.maximum(np.nan_to_num(r, nan=np.nanmax(r)), 1e-6)
        ax.plot(grid, np.median(r, axis=0), color=_color(method), label=method)
        q1, q3 = np.percentile(r, 25, axis=0), np.percentile(r, 75, axis=0)
        ax.fill_between(grid, q1, q3, color=_color(method), alpha=0.2)
    ax.set_yscale("log")
    ax.set_ylabel("regret")
    ax.axhline(problem.threshold, color="grey", lw=0.5, ls="--")


def _plot_pool(ax: Any, problem: Problem, result: dict[str, Any]) -> None:
    """Fraction of seeds that have found a top-5 % (dashed) and top-1 % row (solid)."""
    assert problem.top1 is not None
    for method, runs in result["runs"].items():
        r = np.nan_to_num(np.array([run["regret"] for run in runs], dtype=float), nan=np.inf)
        x = np.arange(1, r.shape[1] + 1)
        top1 = problem.optimum - problem.top1
        ax.plot(x, (r <= top1 + 1e-12).mean(axis=0), color=_color(method), label=method)
        ax.plot(x, (r <= problem.threshold).mean(axis=0), color=_color(method), ls="--", lw=0.8)
    ax.set_ylabel("seeds that found top 5 % (--), 1 %")
    ax.set_ylim(0, 1.02)


def summary(entries: list[tuple[Problem, dict[str, Any]]]) -> None:
    """One line per problem: final regret median of every method, and athanor's AF."""
    methods = [m for m in METHODS if any(m in r["runs"] for _, r in entries)]
    rows = []
    for problem, result in entries:
        runs, budget = result["runs"], result["budget"]
        row: list[object] = [f"{problem.name} ({budget})"]
        for m in methods:
            final = [r["regret"][-1] for r in runs.get(m, [])]
            final = [v for v in final if not math.isnan(v)]
            row.append(f"{median(final):.3g}" if final else "-")
        row.append("/".join(str(len(runs.get(m, []))) for m in methods))
        if "athanor" in runs and "random" in runs:
            mine, _ = _steps(runs["athanor"], problem.threshold, budget)
            theirs, frac = _steps(runs["random"], problem.threshold, budget)
            row.append(f"{'≥' if frac < 0.5 else ''}{theirs / mine:.2g}")
        else:
            row.append("-")
        rows.append(row)
    table(
        "planner: summary, median regret after the budget (seeds)",
        ["problem (budget)", *methods, "seeds", "AF athanor"],
        rows,
        "AF: experiments random needs to reach the problem's threshold / athanor's "
        "(random simulated with the same seeds)",
    )


def report_latency(result: dict[str, Any]) -> None:
    rows = [
        [
            case,
            result["observations"],
            result["calls"],
            r["first"],
            percentile(r["times"], 50),
            percentile(r["times"], 95),
            percentile(r["times"], 99),
            max(r["times"]),
            "≤ 1 s",
        ]
        for case, r in result["cases"].items()
    ]
    table(
        "planner: suggestion latency, 6 dims, batch 4 with 3 pending",
        [
            "case",
            "observations",
            "calls",
            "first s",
            "p50 s",
            "p95 s",
            "p99 s",
            "max s",
            "target p95",
        ],
        rows,
        "same observations, pending points and machine for both; each call adds one "
        "observation; 'first': the first call (a cold fit, not in the percentiles); "
        f"{', '.join(f'{k}: {v}' for k, v in LATENCY_CASES.items())}; torch single-threaded",
    )


# ------------------------------------------------------------------------- entry points


def execute(
    quick: bool, seeds: range, names: list[str] | None, methods: list[str]
) -> list[tuple[Problem, dict[str, Any]]]:
    """Run, print and (unless ``quick``) cache the named problems (default all)."""
    single_thread_torch()
    entries = []
    found, note = problems(quick)
    console.print(note, style="dim")
    if not HAVE_AX:
        console.print(
            "Ax columns skipped: ax-platform is not installed (pip install -e '.[bench]')",
            style="yellow",
        )
    for problem in found:
        if names and problem.name not in names:
            continue
        composite = any("product" in o for o in problem.objectives)
        use = [
            m
            for m in methods
            if (m != "ax" or (HAVE_AX and problem.ax))
            and (m != "athanor-direct" or composite)
            and (m != "botorch-ei" or problem.pool is not None)
            and (m != "athanor-cost" or problem.cost is not None)
        ]
        result = run_problem(problem, use, seeds, quick)
        report(problem, result)
        entries.append((problem, result))
    if not names or "latency" in names:
        lat = latency_scenario(quick)
        if not quick:
            CACHE.mkdir(parents=True, exist_ok=True)
            (CACHE / "latency.json").write_text(json.dumps(lat))
        report_latency(lat)
    return entries


def report_cached() -> None:
    found, _ = problems(quick=False)
    entries = []
    for problem in found:
        result: dict[str, Any] = {"budget": problem.budget, "runs": {}}
        for method in METHODS:
            paths = sorted((CACHE / problem.name / method).glob("seed*.json"))
            runs = [run for path in paths if (run := cached_run(path, problem.budget))]
            if runs:
                result["runs"][method] = runs
        if result["runs"]:
            result["seeds"] = max(len(runs) for runs in result["runs"].values())
            report(problem, result)
            entries.append((problem, result))
    if (CACHE / "latency.json").is_file():
        report_latency(json.loads((CACHE / "latency.json").read_text()))
    if entries:
        summary(entries)
        plot(entries, OUT / "planner_regret.png")
        console.print(f"plot: {OUT / 'planner_regret.png'}", style="dim")


def main(quick: bool) -> None:
    """Quick: 2 seeds, short budgets, a few problems, no Ax. Full: everything, 20 seeds."""
    if not quick:
        execute(False, range(20), None, list(METHODS))
        report_cached()
        return
    names = ["branin", "two_objectives", "branin_failures", "autoam", "latency"]
    entries = execute(True, range(2), names, ["athanor", "athanor-before", "random", "sobol"])
    plot(entries, OUT / "planner_regret_quick.png")
    console.print(f"plot: {OUT / 'planner_regret_quick.png'}", style="dim")


def seed_range(text: str) -> range:
    """``N``: seeds 0 to N-1; ``A-B``: seeds A to B."""
    first, _, last = text.partition("-")
    try:
        return range(int(first), int(last) + 1) if last else range(int(first))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds: {text!r} is neither a count (20) nor a range (10-19)"
        ) from None


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_planner")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--seeds", type=seed_range, default=range(20), help="how many (20) or which (10-19)"
    )
    parser.add_argument("--problems", default="", help="comma-separated (default: all)")
    parser.add_argument(
        "--methods", default="athanor,athanor-cost,athanor-before,botorch-ei,random,sobol,ax"
    )
    parser.add_argument("--report", action="store_true", help="tables and plot from the cache")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.report:
        report_cached()
        return 0
    names = [n for n in args.problems.split(",") if n] or None
    execute(args.quick, args.seeds, names, args.methods.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
