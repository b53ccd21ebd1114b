"""The ``athanor`` command line: one entry point for operators, developers and testers."""

from __future__ import annotations

import logging
import signal
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from athanor import __version__
from athanor.config_files import ConfigError
from athanor.lab_config import LabConfig

if TYPE_CHECKING:
    from athanor.store import Store
    from athanor.store.database import Mode

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
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
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
    # The same goes for the RunEngine's log of a failed plan: the campaign records why.
    for noisy in ("pymodbus", "bluesky"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)


LabPath = Annotated[Path, typer.Argument(help="lab config YAML", show_default=False)]
CampaignArg = Annotated[str, typer.Argument(help="campaign YAML or campaign name")]


@app.command()
def check(
    lab: LabPath,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Connect to every instrument of a lab and show identity, state and readings.

    Instruments are probed at once; one that does not answer is reported, named, after
    its timeout without holding up the others. What an answering instrument lacks (an
    optional register, a firmware query) is listed with the fallback used. Exits 1 when
    any instrument failed.
    """
    import json

    from athanor.lab import check_lab

    config = _load_lab(lab)
    reports = check_lab(config)
    if as_json:
        print(json.dumps([asdict(r) for r in reports], indent=2, default=str))
    else:
        console.print(_check_table(config.name, reports))
        _print_lacks(reports)
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


def _print_lacks(reports: list[Any]) -> None:
    """What each answering instrument lacks, and the fallback used, once per instrument."""
    for r in reports:
        if r.ok and r.lacks:
            console.print(f"[yellow]{r.name} lacks:[/]")
            for lack in r.lacks:
                console.print(f"  - {lack}", highlight=False)


def _fmt(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


DbOption = Annotated[
    str, typer.Option("--db", help="SQLite file or SQLAlchemy URL (postgresql://...)")
]
ApproveOption = Annotated[
    bool, typer.Option("--approve", help="Accept, edit or reject each proposal before it runs.")
]
LiveOption = Annotated[bool, typer.Option("--live/--no-live", help="Live display.")]


@app.command()
def run(
    campaign: Annotated[Path, typer.Argument(help="campaign YAML", show_default=False)],
    lab: Annotated[
        Path | None, typer.Option("--lab", help="lab YAML (default: the campaign's)")
    ] = None,
    db: DbOption = "athanor.db",
    approve: ApproveOption = False,
    live: LiveOption = True,
) -> None:
    """Run an autonomous campaign (Ctrl-C pauses safely and asks what to do).

    SIGTERM stops it as 'stop' does, without asking, and exits 143; a crash is recorded
    as such and exits 1; instrument faults that pause it (with the reason) exit 3; a
    furnace left unsafe (it stopped answering) exits 4.
    'athanor resume' continues after any of them.
    """
    from athanor.campaign.session import load_for_run
    from athanor.store.database import sqlite_path

    try:
        config, lab_config = load_for_run(campaign, lab)
    except ConfigError as exc:
        fail(str(exc))
    path = sqlite_path(db)
    if path is not None and not path.parent.is_dir():
        console.print(f"[cyan]new folder:[/] {path.parent} (for the database {path.name})")
    _run(config, lab_config, db, approve=approve, live=live, new=True)


ServerOption = Annotated[
    str, typer.Option("--server", help="URL of the lab service ('athanor serve')")
]
MaybeServerOption = Annotated[
    str | None,
    typer.Option("--server", help="ask the lab service at this URL instead of a store"),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="ATHANOR_TOKEN",
        show_default=False,
        help="the lab service token (default: $ATHANOR_TOKEN)",
    ),
]


@app.command()
def resume(
    campaign: CampaignArg,
    db: DbOption = "athanor.db",
    approve: ApproveOption = False,
    live: LiveOption = True,
    server: MaybeServerOption = None,
    token: TokenOption = None,
) -> None:
    """Continue a campaign after a pause, a stop, a crash or a kill.

    The campaign continues as it was stored when it started; given its YAML file, resume
    says which keys of the file differ from the stored campaign (they are not used).
    With --server, the lab service resumes the campaign of that name.
    """
    from athanor.campaign.session import stored_campaign
    from athanor.config import load_campaign
    from athanor.store import StoreError

    if server is not None:
        _command(campaign, "resume", server, token)
        return
    edited, name = None, campaign
    try:
        if campaign.endswith((".yaml", ".yml")) or Path(campaign).is_file():
            edited = load_campaign(campaign)
            name = edited.name
        config, lab_config = stored_campaign(db, name)
    except (StoreError, ConfigError) as exc:
        fail(str(exc))
    if edited is not None:
        for key in changed_keys(config.model_dump(mode="json"), edited.model_dump(mode="json")):
            console.print(
                f"[yellow]ignored:[/] {key} differs in {campaign} from the stored campaign, "
                "which resume continues unchanged",
                highlight=False,
            )
    _run(config, lab_config, db, approve=approve, live=live, new=False)


def changed_keys(stored: Any, edited: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two plain-data configs."""
    if isinstance(stored, dict) and isinstance(edited, dict):
        keys = list(dict.fromkeys([*stored, *edited]))
        return [
            k
            for key in keys
            for k in changed_keys(stored.get(key), edited.get(key), f"{prefix}{key}.")
        ]
    return [] if stored == edited else [prefix.rstrip(".") or "(the whole campaign)"]


def _run(config: Any, lab_config: Any, db: str, *, approve: bool, live: bool, new: bool) -> None:
    """Run a campaign, new or resumed. Exits 1 when it crashed, 3 when instrument faults
    paused it, 4 when a furnace could not be made safe, 143 after a SIGTERM."""
    from athanor.campaign.operator import Operator
    from athanor.campaign.runner import CampaignRunner
    from athanor.campaign.session import open_session
    from athanor.drivers.errors import DriverError
    from athanor.lab_lock import LabInUse
    from athanor.store import StoreError

    operator = Operator(console, live=live)
    with operator.signals():
        try:
            with open_session(config, lab_config, db, new=new) as session:
                runner = operator.runner = CampaignRunner(
                    config, session.lab, session.store,
                    approve=operator.approve if approve else None,
                    decide=operator.decide, on_progress=operator.progress,
                    notify=operator.note,
                )  # fmt: skip
                if new:
                    for note in runner.start(session.lab_config):
                        console.print(f"[cyan]start:[/] {note}")
                else:
                    for note in runner.recover():
                        console.print(f"[yellow]resume:[/] {note}")
                try:
                    summary = operator.run(runner, runner.run)
                except Exception as exc:
                    _crashed(config.name, db, exc)
                _print_summary(summary, session)
        except (ConfigError, StoreError, DriverError, LabInUse) as exc:
            fail(str(exc))
    if summary["unsafe"]:
        from athanor.campaign.runner import unsafe_note

        fail(
            f"campaign {config.name!r} ended {summary['status']}, but furnaces are "
            f"{unsafe_note(summary['unsafe'])}. Check them at the instrument before anyone "
            "opens them; 'athanor check' probes them.",
            code=4,
        )
    if summary["status"] == "paused":
        fail(
            f"campaign {config.name!r} paused: {summary['paused_for']}. Every furnace is in "
            f"its safe state; after the fix, 'athanor resume {config.name} --db {db}' "
            "continues it.",
            code=3,
        )
    if operator.terminated:
        console.print(
            f"terminated (SIGTERM): campaign {config.name!r} stopped, every furnace in its "
            f"safe state; 'athanor resume {config.name} --db {db}' continues it",
            highlight=False,
        )
        raise typer.Exit(128 + signal.SIGTERM)


def _crashed(name: str, db: str, exc: Exception) -> NoReturn:
    """Say why a campaign crashed in one line (with the traceback only for a bug)."""
    from athanor.campaign.errors import explain
    from athanor.drivers.errors import DriverError
    from athanor.planner.encoding import PlannerError
    from athanor.store import StoreError

    if not isinstance(exc, ConfigError | DriverError | PlannerError | StoreError):
        err_console.print_exception()
    fail(
        f"campaign {name!r} crashed: {explain(exc)}. Every furnace was put in its safe "
        f"state; 'athanor resume {name} --db {db}' recovers the experiments in flight.",
        code=1,
    )


def _print_summary(summary: dict[str, Any], session: Any) -> None:
    counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items()) or "no experiments"
    console.print(
        f"[bold]{summary['campaign']}[/]: {counts}; {summary['lab_hours']:.1f} lab hours "
        f"in {summary['wall_seconds']:.0f} wall seconds"
    )
    if summary["best"] is not None:
        from athanor.campaign.display import format_recipe

        value, params = summary["best"]
        console.print(f"best: [bold green]{value:.4g}[/] with {format_recipe(params)}")
        if session.sim is not None:
            from athanor.campaign.truth import compare_with_truth

            console.print(compare_with_truth(session.config, session.sim.truth, params))


def _recipe(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def _open_store(db: str, mode: Mode) -> Store:
    """The store at ``db`` for a command that only reads it or writes an existing one."""
    from athanor.store import Store, StoreError

    try:
        return Store(db, mode)
    except StoreError as exc:
        fail(str(exc))


@app.command()
def status(
    campaign: Annotated[
        str | None, typer.Argument(help="a campaign: also where each of its samples went")
    ] = None,
    db: DbOption = "athanor.db",
    server: MaybeServerOption = None,
    token: TokenOption = None,
) -> None:
    """Show the campaigns in the store and where each stands; with a campaign's name,
    also every move of its samples. With --server, the lab service's campaigns (with a
    campaign's name, its experiments)."""
    from athanor.store import StoreError

    if server is not None:
        _server_status(campaign, server, token)
        return
    store = _open_store(db, "read")
    try:
        if campaign is not None:
            store.campaign(campaign)  # StoreError naming the known campaigns
        _print_campaigns(store)
        if campaign is not None:
            console.print(_moves_table(store, campaign))
    except StoreError as exc:
        fail(str(exc))
    finally:
        store.close()


def _print_campaigns(store: Store) -> None:
    """Each campaign's status and experiments, then what the active ones wait for."""
    campaigns = store.campaigns()
    if not campaigns:
        console.print(f"no campaigns in {store.url}")
        return
    table = Table(title=f"campaigns in {store.url}", title_justify="left")
    for column in ("campaign", "status", "experiments", "lab hours", "updated"):
        table.add_column(column)
    waits: list[str] = []
    for c in campaigns:
        counts: dict[str, int] = {}
        experiments = store.experiments(c.name)
        for exp in experiments:
            counts[exp.state] = counts.get(exp.state, 0) + 1
        table.add_row(
            c.name, c.status, ", ".join(f"{n} {s}" for s, n in counts.items()) or "none",
            f"{c.lab_time / 3600:.1f}", f"{c.updated_at:%Y-%m-%d %H:%M}",
        )  # fmt: skip
        if c.status in ("running", "paused", "stopping") or c.waiting.startswith("NOT SAFE"):
            waits += [f"{c.name}: {c.waiting}"] if c.waiting else []
            waits += [
                f"{c.name} #{e.number} ({e.state}): {e.waiting}"
                for e in experiments
                if e.waiting and e.state.active
            ]
    console.print(table)
    for line in waits:
        console.print(f"  {line}", highlight=False)


def _moves_table(store: Store, campaign: str) -> Table:
    """Every move of a campaign's samples: when, which sample, from where, to where, by what."""
    table = Table(title=f"{campaign}: sample moves", title_justify="left")
    for column in ("lab hours", "sample", "from", "to", "by"):
        table.add_column(column)
    for move in store.moves(campaign):
        when = "" if move.lab_time is None else f"{move.lab_time / 3600:.2f}"
        table.add_row(when, move.sample_id, move.source, move.target, move.by)
    return table


# ---------------------------------------------------------------------- the lab service


@app.command()
def serve(
    lab: LabPath,
    db: DbOption = "athanor.db",
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="port")] = 8000,
    init_admin: Annotated[
        bool,
        typer.Option("--init-admin", help="Make the first admin, print its token once, exit."),
    ] = False,
) -> None:
    """Run the lab service: one process owns the lab and runs many campaigns on it,
    behind a REST API with tokens (OpenAPI at /docs). A simulated lab's emulators start
    too. Every campaign that was running or paused when it stopped is resumed."""
    from athanor.drivers.errors import DriverError
    from athanor.lab_lock import LabInUse
    from athanor.service import server as service
    from athanor.store import StoreError

    config = _load_lab(lab)
    try:
        if init_admin:
            token = service.init_admin(db)
            console.print(f"admin user {service.INIT_ADMIN!r} made; its token (shown only now):")
            print(token)
            return
        service.serve(config, db, host, port, say=lambda note: console.print(note, highlight=False))
    except (ConfigError, StoreError, DriverError, LabInUse) as exc:
        fail(str(exc))


def _client(server: str, token: str | None) -> Any:
    from athanor.service.client import ServiceClient

    return ServiceClient(server, token)


def _call(server: str, token: str | None, method: str, path: str, **kwargs: Any) -> Any:
    """A call to the lab service; a failure is said plainly (no traceback)."""
    from athanor.service.client import ClientError

    try:
        return _client(server, token).call(method, path, **kwargs)
    except ClientError as exc:
        fail(str(exc))


@app.command()
def submit(
    campaign: Annotated[Path, typer.Argument(help="campaign YAML", show_default=False)],
    server: ServerOption,
    token: TokenOption = None,
    priority: Annotated[
        int, typer.Option("--priority", help="higher goes first for shared instruments")
    ] = 0,
) -> None:
    """Submit a campaign to the lab service, which starts it on its lab."""
    try:
        text = campaign.read_bytes()
    except OSError as exc:
        fail(f"{campaign}: cannot be read ({exc.strerror})")
    answer = _call(
        server, token, "POST", "/campaigns", body=text, content_type="application/yaml",
        query={"priority": priority, "source": str(campaign)},
    )  # fmt: skip
    for note in answer["notes"]:
        console.print(f"[cyan]start:[/] {note}", highlight=False)
    console.print(f"submitted [bold]{escape(answer['campaign']['name'])}[/] to {server}")


def _command(name: str, what: str, server: str, token: str | None) -> None:
    view = _call(server, token, "POST", _client(server, token).campaign_path(name, what))
    console.print(
        f"{escape(view['name'])}: {what} taken; status {view['status']}, wanted {view['wanted']}",
        highlight=False,
    )


NameArg = Annotated[str, typer.Argument(help="campaign name (as the service has it)")]


@app.command()
def pause(name: NameArg, server: ServerOption, token: TokenOption = None) -> None:
    """Pause a campaign of the lab service (its furnaces go safe); resume continues it."""
    _command(name, "pause", server, token)


@app.command()
def stop(name: NameArg, server: ServerOption, token: TokenOption = None) -> None:
    """Stop a campaign of the lab service; resume continues it later."""
    _command(name, "stop", server, token)


@app.command()
def abort(name: NameArg, server: ServerOption, token: TokenOption = None) -> None:
    """Abort a campaign of the lab service: its experiments in flight are abandoned."""
    _command(name, "abort", server, token)


def _server_status(name: str | None, server: str, token: str | None) -> None:
    """The lab service's campaigns, or one campaign's experiments."""
    client = _client(server, token)
    if name is not None:
        view = _call(server, token, "GET", client.campaign_path(name))
        experiments = _call(server, token, "GET", client.campaign_path(name, "experiments"))
        table = Table(title=f"{name}: {view['status']} (wanted {view['wanted']})",
                      title_justify="left")  # fmt: skip
        for column in ("#", "state", "furnace", "waiting or reason"):
            table.add_column(column)
        for e in experiments:
            table.add_row(str(e["number"]), e["state"], e["furnace"] or "",
                          e["waiting"] or e["reason"])  # fmt: skip
        console.print(table)
        for note in view["notes"]:
            console.print(f"  note: {note}", highlight=False)
        return
    views = _call(server, token, "GET", "/campaigns")
    if not views:
        console.print(f"no campaigns on {server}")
        return
    table = Table(title=f"campaigns on {server}", title_justify="left")
    for column in ("campaign", "status", "wanted", "priority", "experiments", "lab hours"):
        table.add_column(column)
    for v in views:
        counts = ", ".join(f"{n} {s}" for s, n in v["counts"].items()) or "none"
        table.add_row(v["name"], v["status"], v["wanted"], str(v["priority"]), counts,
                      f"{v['lab_hours']:.1f}")  # fmt: skip
    console.print(table)


@app.command()
def report(
    campaign: Annotated[str, typer.Argument(help="campaign name (as in the store)")],
    db: DbOption = "athanor.db",
    out: Annotated[Path | None, typer.Option("--out", help="HTML file to write")] = None,
) -> None:
    """Write an HTML report of a campaign: progress, coverage, best samples, utilisation."""
    from athanor.campaign.report import write_report
    from athanor.store import StoreError

    store = _open_store(db, "read")
    try:
        path = write_report(store, campaign, out or Path(f"{campaign}-report.html"))
    except StoreError as exc:
        fail(str(exc))
    finally:
        store.close()
    console.print(f"wrote {path}")


@app.command()
def analyse(
    campaign: Annotated[str, typer.Argument(help="campaign name (as in the store)")],
    method: Annotated[
        str, typer.Option("--method", help="xrd.wpf, xrd.peak_ratio, spectra.tauc_auto, ...")
    ] = "xrd.wpf",
    outcome: Annotated[str | None, typer.Option("--outcome", help="show only this outcome")] = None,
    db: DbOption = "athanor.db",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show, do not store.")] = False,
) -> None:
    """Re-analyse a campaign's stored measurements with another method or parameters."""
    from athanor.analysis import METHODS, AnalysisError
    from athanor.campaign.reanalysis import reanalyse_campaign
    from athanor.store import StoreError

    if method not in METHODS:
        fail(f"--method {method!r} is not an analysis method; methods: {', '.join(METHODS)}")
    store = _open_store(db, "read" if dry_run else "write")
    try:
        changes = reanalyse_campaign(store, campaign, method, record=not dry_run)
    except (StoreError, AnalysisError) as exc:
        fail(str(exc))
    finally:
        store.close()
    table = Table(title=f"{campaign}: {method}", title_justify="left")
    for column in ("experiment", "outcome", "before", "after"):
        table.add_column(column)
    for c in changes:
        if outcome is not None and c.outcome not in (outcome, "-"):
            continue
        before = "—" if c.before is None else f"{c.before:.4g}"
        after = f"rejected: {c.rejected}" if c.rejected else f"{c.after:.4g}"
        table.add_row(str(c.experiment), c.outcome, before, after)
    console.print(table)
    if not dry_run:
        console.print("stored as the current outcomes (earlier ones kept as superseded)")


@sim_app.command("serve")
def sim_serve(
    lab: LabPath,
    write_lab: Annotated[
        Path | None,
        typer.Option("--write-lab", help="Write the lab config with the real connections here."),
    ] = None,
) -> None:
    """Start every emulator of a simulated lab on loopback until interrupted.

    Prints each instrument's real connection (port, pty path); with ``--write-lab`` also
    writes a lab config that ``athanor check`` and ``athanor run --lab`` can use.
    """
    import threading

    import yaml

    from athanor.lab import simulate

    config = _load_lab(lab)
    try:
        with simulate(config) as sim:
            resolved = sim.start()
            table = Table(title=f"{config.name}: serving (Ctrl-C stops)", title_justify="left")
            for column in ("instrument", "kind", "model", "connection"):
                table.add_column(column)
            for name, inst in resolved.instruments.items():
                table.add_row(name, inst.kind, inst.model, inst.connection)
            console.print(table)
            console.print(f"lab clock: {sim.clock.time_scale:g}× (epoch {sim.clock.epoch:.3f})")
            if write_lab is not None:
                data = resolved.model_dump(mode="json", exclude={"simulation"})
                write_lab.write_text(yaml.safe_dump(data, sort_keys=False))
                console.print(f"wrote {write_lab}")
            stop = threading.Event()
            # Handled here, not left to Python: a serve started in the background of a
            # script inherits SIGINT as ignored, and Ctrl-C must stop it all the same.
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            # Timed: a signal the OS hands to an emulator thread is only acted on when
            # the main thread runs Python again.
            while not stop.wait(0.2):
                pass
            console.print("stopping emulators ...")
    except ConfigError as exc:
        fail(str(exc))
    console.print("stopped cleanly")


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
def plan_check(
    plan: Annotated[str, typer.Argument(help="built-in plan name or package.module:function")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE, repeatable")
    ] = None,
    lab: Annotated[
        Path, typer.Option("--lab", help="lab whose instruments and limits apply")
    ] = Path("lab_configs/sim_lab.yaml"),
) -> None:
    """Dry-run a plan without hardware: its steps, moves and predicted lab-time duration.

    Limit violations are reported before anything would heat; exits 1 when there is one.
    """
    from athanor.campaign.dryrun import dry_run
    from athanor.drivers.errors import LimitError
    from athanor.protocols.parameters import ArgumentError
    from athanor.protocols.registry import PlanError

    params = _parse_params(param or [])
    config = _load_lab(lab)
    try:
        result = dry_run(plan, params, config)
    except ArgumentError as exc:
        fail(f"refused before anything moves: {exc}", code=1)
    except (PlanError, ConfigError) as exc:
        fail(str(exc))
    except (LimitError, ValueError) as exc:
        fail(f"limit violation, refused before anything moves: {exc}", code=1)
    table = Table(title=f"{plan}: dry run on {config.name}", title_justify="left")
    for column in ("#", "step", "on", "what", "lab time"):
        table.add_column(column)
    for i, step in enumerate(result.steps, 1):
        duration = f"{step.lab_seconds / 60:.0f} min" if step.lab_seconds else ""
        table.add_row(str(i), step.command, step.target, step.value, duration)
    console.print(table)
    moves = sum(1 for s in result.steps if s.command == "set")
    console.print(
        f"{len(result.steps)} steps, {moves} moves; predicted duration "
        f"[bold]{result.duration / 3600:.2f} lab hours[/]; no limit violated"
    )


def _parse_params(items: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` items as text values (the plan's parameter types convert them)."""
    params: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip() or not text.strip():
            fail(f"--param {item!r}: write NAME=VALUE, e.g. --param temperature_c=1000")
        if name in params:
            fail(f"--param {name} is given twice ({params[name]!r} and {text!r}); give it once")
        params[name] = text
    return params


def _load_lab(path: Path) -> LabConfig:
    from athanor.lab_config import load_lab

    try:
        return load_lab(path)
    except ConfigError as exc:
        fail(str(exc))


if __name__ == "__main__":  # pragma: no cover
    app()
