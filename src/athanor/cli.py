"""The ``athanor`` command line: one entry point for operators, developers and testers."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from athanor import __version__
from athanor.config import ConfigError, LabConfig

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="athanor",
    help="A self-driving laboratory for materials synthesis.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
sim_app = typer.Typer(help="The simulated lab: serve emulators on loopback.", no_args_is_help=True)
plan_app = typer.Typer(help="Protocol plans: list and dry-run them.", no_args_is_help=True)
app.add_typer(sim_app, name="sim")
app.add_typer(plan_app, name="plan")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-paragraph error for a user mistake and exit non-zero (no traceback)."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def not_built(what: str, issue: int) -> NoReturn:
    fail(f"'athanor {what}' is not built yet (see issue {issue}).", code=3)


def _version(value: bool) -> None:
    if value:
        console.print(f"athanor {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """A self-driving laboratory for materials synthesis."""
    # Our drivers raise typed errors; pymodbus' own log lines about the same failures
    # would only repeat them on the operator's screen.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


LabPath = Annotated[Path, typer.Argument(help="lab config YAML", show_default=False)]
CampaignArg = Annotated[str, typer.Argument(help="campaign YAML or campaign name")]


@app.command()
def check(
    lab: LabPath,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Connect to every instrument of a lab and show identity, state and readings.

    Instruments are probed at once; one that does not answer is reported, named, after
    its timeout without holding up the others. Exits 1 when any instrument failed.
    """
    import json

    from athanor.lab import check_lab

    config = _load_lab(lab)
    reports = check_lab(config)
    if as_json:
        print(json.dumps([asdict(r) for r in reports], indent=2, default=str))
    else:
        console.print(_check_table(config.name, reports))
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def _check_table(title: str, reports: list[Any]) -> Table:
    table = Table(title=f"{title}: instruments", title_justify="left")
    for column in ("instrument", "kind", "connection", "identity", "state", "readings"):
        table.add_column(column, overflow="fold")
    for r in reports:
        if r.ok:
            readings = "\n".join(f"{k}: {_fmt(v)}" for k, v in r.readings.items())
            table.add_row(r.name, f"{r.kind}\n{r.model}", r.connection, r.identity,
                          f"[green]{r.state}[/]", readings)  # fmt: skip
        else:
            table.add_row(r.name, f"{r.kind}\n{r.model}", r.connection, "",
                          "[bold red]unreachable[/]", f"[red]{r.error}[/]")  # fmt: skip
    return table


def _fmt(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


@app.command()
def run(campaign: CampaignArg) -> None:
    """Run an autonomous campaign."""
    not_built("run", 6)


@app.command()
def resume(campaign: CampaignArg) -> None:
    """Continue a campaign after a pause, a crash or a kill."""
    not_built("resume", 6)


@app.command()
def status() -> None:
    """Show the campaigns in the store and where each stands."""
    not_built("status", 6)


@app.command()
def report(campaign: CampaignArg) -> None:
    """Write an HTML report of a campaign."""
    not_built("report", 6)


@app.command()
def analyse(campaign: CampaignArg) -> None:
    """Re-analyse a campaign's stored measurements."""
    not_built("analyse", 7)


@sim_app.command("serve")
def sim_serve(lab: LabPath) -> None:
    """Start every emulator of a simulated lab on loopback until interrupted."""
    _load_lab(lab)
    not_built("sim serve", 3)


@sim_app.command("validate")
def sim_validate(lab: LabPath) -> None:
    """Check a lab config and print its instruments."""
    config = _load_lab(lab)
    console.print(
        f"[bold]{config.name}[/]: {len(config.instruments)} instruments, "
        f"time scale {config.clock.time_scale:g}×" + (", simulated" if config.simulated else "")
    )
    for name, inst in config.instruments.items():
        console.print(f"  {name:<14} {inst.kind:<15} {inst.model:<14} {inst.connection}")


@plan_app.command("check")
def plan_check(plan: Annotated[str, typer.Argument(help="plan name")]) -> None:
    """Dry-run a protocol plan: steps, moves, predicted duration, limit violations."""
    not_built("plan check", 6)


def _load_lab(path: Path) -> LabConfig:
    from athanor.config import load_lab

    try:
        return load_lab(path)
    except ConfigError as exc:
        fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    app()
