"""Opening everything a campaign needs: config, store, (simulated) lab, runner."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from athanor.clock import Clock, make_clock
from athanor.config import CampaignConfig, check_with_lab, load_campaign
from athanor.config_files import ConfigError, ConfigSource
from athanor.lab import Lab
from athanor.lab_config import LabConfig, load_lab
from athanor.lab_lock import hold_lab
from athanor.planner.encoding import PlannerError
from athanor.store import Store, StoreError
from athanor.store.database import Mode

DEFAULT_DB = "athanor.db"


@dataclass
class LabSession:
    """A lab held and connected, with its store."""

    lab_config: LabConfig  # as written (a simulated lab's before its emulators started)
    lab: Lab
    store: Store
    sim: Any | None  # SimulatedLab when the lab is simulated


@dataclass
class Session(LabSession):
    """A lab held and connected for one campaign."""

    config: CampaignConfig


def load_for_run(campaign: Path, lab: Path | None) -> tuple[CampaignConfig, LabConfig]:
    """The campaign and its lab, checked before any instrument moves."""
    config = load_campaign(campaign)
    lab_path = lab or config.lab_path()
    lab_config = load_lab(lab_path)
    check_campaign(config, lab_config)
    return config, lab_config


def parse_campaign(text: str, name: str) -> CampaignConfig:
    """A campaign YAML text (e.g. one submitted to the lab service), read and checked as
    :func:`~athanor.config.load_campaign` reads a file; errors are located in ``name``."""
    source = ConfigSource.parse(text, name)
    if not isinstance(source.data, dict):
        raise ConfigError(
            f"{name}: campaign must be a mapping of keys to values, "
            f"got {type(source.data).__name__}"
        )
    config = source.validate(CampaignConfig, what="campaign")
    config._source = source
    return config


def check_campaign(config: CampaignConfig, lab_config: LabConfig) -> None:
    """What ``run`` and ``resume`` check before anything moves: the campaign against its
    plan and lab (:func:`~athanor.config.check_with_lab`) and its planner set-up;
    ConfigError if either is wrong."""
    from athanor.planner.planner import Planner

    check_with_lab(config, lab_config)
    try:
        Planner(
            config.search_space, config.planner_objectives(), config.outcome_constraints,
            seed=config.seed, n_initial=config.initial_experiments,
        )  # fmt: skip
    except PlannerError as exc:
        raise ConfigError(f"campaign {config.name!r}: {exc}") from None


@contextmanager
def open_session(
    config: CampaignConfig, lab_config: LabConfig, db: str, *, new: bool = True
) -> Iterator[Session]:
    """:func:`open_lab` for one campaign (a new one may make the store; a resumed one
    needs it)."""
    holder = {"campaign": config.name, "db": db}
    with open_lab(lab_config, db, holder, "create" if new else "write") as opened:
        yield Session(opened.lab_config, opened.lab, opened.store, opened.sim, config)


@contextmanager
def open_lab(
    lab_config: LabConfig, db: str, holder: dict[str, Any], mode: Mode = "create"
) -> Iterator[LabSession]:
    """Hold the lab (:func:`~athanor.lab_lock.hold_lab` in the name of ``holder``:
    refused while another process drives it), open the store in ``mode``, start the
    simulated lab if the lab is simulated, connect."""
    with ExitStack() as stack:
        stack.enter_context(hold_lab(lab_config, holder))
        store = Store(db, mode)
        stack.callback(store.close)
        sim = None
        clock = make_clock(lab_config.clock.time_scale)
        if lab_config.simulated:
            from athanor.lab import simulate

            sim = stack.enter_context(simulate(lab_config, clock))
            resolved = sim.start()
        else:
            resolved = lab_config
        lab = Lab.connect(resolved, clock)
        stack.callback(lab.close)
        record_moves(lab, store)
        yield LabSession(lab_config, lab, store, sim)


def record_moves(lab: Lab, store: Store) -> None:
    """Every sample move the lab's transfer instruments make is recorded in the store."""
    for name, robot in lab.of_kind("transfer").items():
        robot.subscribe(partial(_record_move, store, lab.clock, name), robot.SUB_MOVED, run=False)


def _record_move(
    store: Store, clock: Clock, by: str, *, sample_id: str, source: str, target: str, **_: Any
) -> None:
    store.move_sample(sample_id, target, clock.now(), source=source, by=by)


def stored_campaign(db: str, name: str) -> tuple[CampaignConfig, LabConfig]:
    """A campaign's config and lab as the store keeps them (for resume), checked as
    ``run`` checks them (the protocol may have changed since, or left the path)."""
    store = Store(db, "write")
    try:
        config, lab_config = stored_config(store, name)
    finally:
        store.close()
    check_campaign(config, lab_config)
    return config, lab_config


def stored_config(store: Store, name: str) -> tuple[CampaignConfig, LabConfig]:
    """A campaign's config and lab as ``store`` keeps them, not checked yet; StoreError
    for a campaign whose creation never finished."""
    campaign = store.campaign(name)
    if store.creation_unfinished(name):
        raise StoreError(
            f"campaign {name!r} in {store.url} was never fully created (its planner state "
            "was not written: the disk may have been full) and nothing of it ran; "
            "'athanor run CAMPAIGN.yaml' starts it afresh"
        )
    return CampaignConfig.model_validate(campaign.config), LabConfig.model_validate(campaign.lab)
