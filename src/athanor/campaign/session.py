"""Opening everything a campaign needs: config, store, (simulated) lab, runner."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from athanor.clock import make_clock
from athanor.config import CampaignConfig, load_campaign
from athanor.config_files import ConfigError
from athanor.lab import Lab
from athanor.lab_config import LabConfig, load_lab
from athanor.planner.encoding import PlannerError
from athanor.protocols.registry import PlanError
from athanor.store import Store

DEFAULT_DB = "athanor.db"


@dataclass
class Session:
    config: CampaignConfig
    lab_config: LabConfig
    lab: Lab
    store: Store
    sim: Any | None  # SimulatedLab when the lab is simulated


def load_for_run(campaign: Path, lab: Path | None) -> tuple[CampaignConfig, LabConfig]:
    """The campaign and its lab, checked before any instrument moves."""
    config = load_campaign(campaign)
    lab_path = lab or config.lab_path()
    lab_config = load_lab(lab_path)
    check_campaign(config, lab_config)
    return config, lab_config


def check_campaign(config: CampaignConfig, lab_config: LabConfig) -> None:
    """Protocol, parameters, the lab's instruments for the protocol's requests and the
    planner set-up must all be valid; ConfigError if not."""
    from athanor.planner.planner import Planner
    from athanor.protocols.registry import check_arguments, resolve
    from athanor.protocols.requests import check_requests

    where = f"campaign {config.name!r}"
    try:
        plan = resolve(config.protocol)
        names = [p.name for p in config.search_space.parameters] + list(config.protocol_args)
        check_arguments(plan, names, where)
        check_requests(plan, lab_config)
        Planner(
            config.search_space, config.planner_objectives(), config.outcome_constraints,
            seed=config.seed, n_initial=config.initial_experiments,
        )  # fmt: skip
    except (PlanError, PlannerError) as exc:
        raise ConfigError(f"{where}: {exc}" if where not in str(exc) else str(exc)) from None


@contextmanager
def open_session(
    config: CampaignConfig, lab_config: LabConfig, db: str, *, new: bool = True
) -> Iterator[Session]:
    """Open the store (a new campaign may make it; a resumed one needs it), start the
    simulated lab if the lab is simulated, connect."""
    with ExitStack() as stack:
        store = Store(db, "create" if new else "write")
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
        yield Session(config, lab_config, lab, store, sim)


def stored_campaign(db: str, name: str) -> tuple[CampaignConfig, LabConfig]:
    """A campaign's config and lab as the store keeps them (for resume), checked as
    ``run`` checks them (the protocol may have changed since, or left the path)."""
    store = Store(db, "write")
    try:
        campaign = store.campaign(name)
    finally:
        store.close()
    config = CampaignConfig.model_validate(campaign.config)
    lab_config = LabConfig.model_validate(campaign.lab)
    check_campaign(config, lab_config)
    return config, lab_config
