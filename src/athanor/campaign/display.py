"""The operator's live view of a campaign (rich)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from athanor.campaign.progress import Progress

ORDER = ("proposed", "queued", "running", "measuring", "analysed", "failed", "abandoned")


def format_recipe(params: dict[str, object]) -> str:
    """``temperature_c=1063, dwell_h=3.54, ...`` with four significant digits."""
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m"


def render(progress: Progress) -> Group:
    """A headline, the experiments by state, and each furnace's holder and temperature."""
    counts = progress.counts
    done = counts.get("analysed", 0) + counts.get("failed", 0)
    head = Text.assemble(
        (f"{progress.campaign}  ", "bold"),
        f"{done}/{progress.max_experiments} done   ",
        f"lab time {_duration(progress.lab_time)}   wall {progress.wall_time:.0f} s",
    )
    states = Table.grid(padding=(0, 2))
    states.add_row(*(f"{s} [bold]{counts.get(s, 0)}[/]" for s in ORDER))
    furnaces = Table(box=None, padding=(0, 2), show_header=True, header_style="dim")
    for column in ("furnace", "experiment", "°C"):
        furnaces.add_column(column)
    for name, (holder, temperature) in progress.furnaces.items():
        temp = "—" if temperature is None else f"{temperature:.0f}"
        furnaces.add_row(name, holder, temp)
    parts: list[object] = [head, states, furnaces]
    if progress.activity:
        parts.append(Text(progress.activity, style="yellow"))
    for number, why in sorted(progress.waiting.items()):
        parts.append(Text(f"#{number} {why}", style="dim"))
    if progress.best is not None:
        value, params = progress.best
        parts.append(
            Text.assemble(("best so far ", "green"), f"{value:.4g}  ({format_recipe(params)})")
        )
    return Group(*parts)  # type: ignore[arg-type]
