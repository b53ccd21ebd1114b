"""The campaign report: one self-contained HTML file with the plots people look at."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from athanor.campaign.collect import Collector
from athanor.campaign.display import format_recipe
from athanor.config import CampaignConfig
from athanor.lab_config import LabConfig
from athanor.protocols.contract import Stage
from athanor.store import Experiment, ExperimentState, Store

S = ExperimentState


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _objective_values(
    config: CampaignConfig, experiments: list[Experiment], outcomes: dict[int, dict[str, Any]]
) -> dict[str, list[float]]:
    """Each objective's value per analysed experiment (derived outcomes recomputed)."""
    from athanor.campaign.outcomes import derive

    values: dict[str, list[float]] = {o.name: [] for o in config.objectives}
    for exp in experiments:
        measured = {k: o.value for k, o in outcomes.get(exp.id or -1, {}).items()}
        measured.update(derive(measured, config.derived) if measured else {})
        for objective in config.objectives:
            source = config.outcomes.get(objective.name, objective.name)
            values[objective.name].append(measured.get(source, np.nan))
    return values


def best_so_far_plot(config: CampaignConfig, numbers: list[int], values: list[float]) -> str:
    objective = config.objectives[0]
    y = np.asarray(values, float)
    sign = -1 if objective.goal == "minimize" else 1
    if objective.goal == "target":
        y, sign = -np.abs(y - (objective.target or 0.0)), 1
    running = sign * np.fmax.accumulate(np.where(np.isnan(y), -np.inf, sign * y))
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    ax.plot(numbers, y, "o", color="0.6", label="each experiment")
    ax.step(numbers, running, where="post", color="C0", lw=2, label="best so far")
    ax.axvline(
        config.initial_experiments + 0.5, color="0.8", ls="--", label="end of initial design"
    )
    ax.set_xlabel("experiment")
    ax.set_ylabel(objective.name)
    ax.legend(frameon=False, fontsize=8)
    return _png(fig)


def coverage_plot(
    config: CampaignConfig, experiments: list[Experiment], values: list[float]
) -> str:
    names = [p.name for p in config.search_space.parameters if p.type in ("continuous", "integer")]
    n = len(names)
    fig = Figure(figsize=(1.9 * n, 1.9 * n))
    axes = fig.subplots(n, n, squeeze=False)
    colour = np.asarray(values, float)
    for i, yi in enumerate(names):
        for j, xj in enumerate(names):
            ax = axes[i][j]
            if i == j:
                ax.hist([e.params[xj] for e in experiments], bins=10, color="C0")
            else:
                ax.scatter([e.params[xj] for e in experiments], [e.params[yi] for e in experiments],
                           c=colour, cmap="viridis", s=12)  # fmt: skip
            if i == n - 1:
                ax.set_xlabel(xj, fontsize=8)
            if j == 0:
                ax.set_ylabel(yi, fontsize=8)
            ax.tick_params(labelsize=6)
    return _png(fig)


def pareto_plot(config: CampaignConfig, values: dict[str, list[float]]) -> str:
    a, b = config.objectives[0].name, config.objectives[1].name
    fig = Figure(figsize=(5, 4))
    ax = fig.subplots()
    ax.scatter(values[a], values[b], color="C0")
    ax.set_xlabel(a)
    ax.set_ylabel(b)
    ax.set_title("outcomes of every experiment (Pareto front: the non-dominated edge)")
    return _png(fig)


def measurement_plots(store: Store, experiment: Experiment) -> tuple[str, str] | None:
    """The powder pattern and the transmission of one experiment, from its stored runs."""
    collector = Collector()
    for run in store.runs(experiment.campaign, experiment.id):
        store.replay(run.uid, collector)
    xrd, spectra = collector.last(Stage.XRD), collector.last(Stage.SPECTRUM)
    if xrd is None or spectra is None or not xrd.streams.get("primary"):
        return None
    device = xrd.start["detectors"][0]
    event = xrd.streams["primary"][-1]
    fig = Figure(figsize=(6.5, 3))
    ax = fig.subplots()
    ax.plot(event[f"{device}_two_theta"], event[f"{device}_counts"], lw=0.7)
    ax.set_xlabel("2θ (°)")
    ax.set_ylabel("counts")
    pattern = _png(fig)
    spec = spectra.start["detectors"][0]
    data = {s: np.asarray(spectra.streams[s][-1][f"{spec}_counts"], float)
            for s in ("dark", "reference", "primary") if spectra.streams.get(s)}  # fmt: skip
    wavelengths = np.asarray(spectra.streams["primary"][-1][f"{spec}_wavelengths"], float)
    fig = Figure(figsize=(6.5, 3))
    ax = fig.subplots()
    if {"dark", "reference", "primary"} <= set(data):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (data["primary"] - data["dark"]) / (data["reference"] - data["dark"])
        keep = (data["reference"] - data["dark"]) > 50
        ax.plot(wavelengths[keep], np.clip(t[keep], -0.1, 1.2), lw=0.8)
        ax.set_ylabel("transmittance")
    ax.set_xlabel("wavelength (nm)")
    return pattern, _png(fig)


def utilisation_plot(
    store: Store, campaign: str, time_scale: float
) -> tuple[str, dict[str, float]]:
    """When each instrument was busy (lab hours), from the runs' start and stop times."""
    rows: dict[str, list[tuple[float, float]]] = {}
    runs = [r for r in store.runs(campaign) if r.stop_time is not None]
    if not runs:
        return "", {}
    t0 = min(r.start_time for r in runs)
    for run in runs:
        assert run.stop_time is not None
        start = dict(store.documents(run.uid)[0][1])
        instrument = start.get("furnace") or (start.get("detectors") or ["?"])[0]
        begin, width = run.start_time - t0, run.stop_time - run.start_time
        rows.setdefault(instrument, []).append(
            (begin * time_scale / 3600, width * time_scale / 3600)
        )
    end = max(b + w for spans in rows.values() for b, w in spans)
    busy = {name: sum(w for _, w in spans) / end for name, spans in rows.items()}
    fig = Figure(figsize=(7, 0.45 * len(rows) + 1))
    ax = fig.subplots()
    for i, (_, spans) in enumerate(sorted(rows.items())):
        ax.broken_barh(spans, (i - 0.4, 0.8), color=f"C{i % 10}")
    ax.set_yticks(range(len(rows)), sorted(rows))
    ax.set_xlabel("lab hours since the first run")
    return _png(fig), busy


def write_report(store: Store, name: str, out: Path) -> Path:
    """Write ``out`` (HTML) for campaign ``name``; returns the path."""
    campaign = store.campaign(name)
    config = CampaignConfig.model_validate(campaign.config)
    lab = LabConfig.model_validate(campaign.lab)
    experiments = store.experiments(name)
    analysed = [e for e in experiments if e.state == S.ANALYSED]
    outcomes = store.outcomes(name)
    values = _objective_values(config, analysed, outcomes)
    first = config.objectives[0].name
    sections = []
    counts: dict[str, int] = {}
    for e in experiments:
        counts[e.state] = counts.get(e.state, 0) + 1
    sections.append(
        f"<p>Status <b>{html.escape(campaign.status)}</b>; experiments: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + f"; {campaign.lab_time / 3600:.1f} lab hours.</p>"
    )
    if analysed:
        numbers = [e.number for e in analysed]
        sections.append("<h2>Best value over experiments</h2>")
        sections.append(
            f'<img src="data:image/png;base64,{best_so_far_plot(config, numbers, values[first])}">'
        )
        sections.append(
            "<h2>Parameter space coverage</h2><p>colour: " + html.escape(first) + "</p>"
        )
        sections.append(
            f'<img src="data:image/png;base64,{coverage_plot(config, analysed, values[first])}">'
        )
        if len(config.objectives) > 1:
            sections.append("<h2>Pareto front</h2>")
            sections.append(_img(pareto_plot(config, values)))
        goal = config.objectives[0]
        order = np.argsort(np.nan_to_num(np.asarray(values[first], float), nan=-np.inf))
        if goal.goal == "minimize":
            order = order[::-1]
        sections.append("<h2>Best samples: patterns and spectra</h2>")
        for index in list(order[::-1])[:3]:
            exp = analysed[int(index)]
            value = values[first][int(index)]
            sections.append(
                f"<h3>experiment {exp.number}: {html.escape(first)} = {value:.4g}</h3>"
                f"<p>{html.escape(format_recipe(exp.params))}</p>"
            )
            sections.extend(_img(p) for p in measurement_plots(store, exp) or ())
    timeline, busy = utilisation_plot(store, name, lab.clock.time_scale)
    if timeline:
        sections.append("<h2>Instrument utilisation</h2>")
        sections.append(
            "<p>" + ", ".join(f"{k}: {v:.0%}" for k, v in sorted(busy.items())) + "</p>"
        )
        sections.append(_img(timeline))
    rows = "".join(
        f"<tr><td>{e.number}</td><td>{e.state}</td><td>{e.furnace or ''}</td>"
        f"<td>{html.escape(format_recipe(e.params))}</td><td>{html.escape(e.reason)}</td></tr>"
        for e in experiments
    )
    header = "".join(f"<th>{h}</th>" for h in ("#", "state", "furnace", "parameters", "note"))
    sections.append(f"<h2>Every experiment</h2><table><tr>{header}</tr>{rows}</table>")
    title = html.escape(name)
    page = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body><h1>Campaign {title}</h1>"
        f"<p>{html.escape(config.description)}</p>{''.join(sections)}</body></html>"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


STYLE = (
    "body{font-family:sans-serif;max-width:1000px;margin:2em auto}img{max-width:100%}"
    "td,th{padding:2px 8px;font-size:12px;text-align:left}"
)


def _img(png: str) -> str:
    return f'<img src="data:image/png;base64,{png}">'
