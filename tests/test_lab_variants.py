"""A lab whose instruments differ where the facts are silent: checked, then run.

``lab_configs/sim_lab_variants.yaml`` switches every firmware variant on; a lab built
from them must be as usable as the default one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from campaign_files import write_campaign
from typer.testing import CliRunner

from athanor.cli import app
from athanor.lab import simulate
from athanor.lab_config import load_lab
from athanor.store import ExperimentState, Store

ROOT = Path(__file__).parent.parent
VARIANTS = ROOT / "lab_configs" / "sim_lab_variants.yaml"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The variants lab served in-process; yields the path of the written lab config."""
    folder = tmp_path_factory.mktemp("variants")
    with simulate(load_lab(VARIANTS), root=folder) as sim:
        resolved = sim.start()
        path = folder / "served.yaml"
        data = resolved.model_dump(mode="json", exclude={"simulation"})
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        yield path


def test_check_finds_every_variant_instrument_reachable_and_says_what_each_lacks(served):
    result = CliRunner().invoke(app, ["check", str(served), "--json"])
    assert result.exit_code == 0, result.output
    reports = {r["name"]: r for r in json.loads(result.output)}
    assert all(r["ok"] for r in reports.values()), {n: r["error"] for n, r in reports.items()}
    lacks = {name: " | ".join(r["lacks"]) for name, r in reports.items()}
    assert "input range" in lacks["furnace1"] and "instrument type" in lacks["furnace1"]
    assert "register 23 absent" in lacks["furnace2"]
    assert "low word first" in lacks["furnace3"]
    assert "says the lab config" in lacks["furnace4"]
    assert "wavelength slots 1-4" in lacks["uvvis"]
    assert reports["furnace2"]["state"].endswith("no programmer")
    assert reports["furnace1"]["identity"].endswith("(type unknown, version unknown)")


def test_check_prints_each_lack_once_under_the_table(served):
    result = CliRunner().invoke(app, ["check", str(served)])
    assert result.exit_code == 0, result.output
    assert "furnace2 lacks:" in result.output
    assert result.output.count("input range (registers 11, 12)") == 2  # furnace1, furnace3


@pytest.mark.slow
def test_a_campaign_on_the_variants_lab_analyses_every_experiment(tmp_path):
    def faster_line(instruments, folder):
        instruments["uvvis"]["sim"]["firmware"]["pace_baud"] = 115200  # 0.4 s a spectrum

    path = write_campaign(
        tmp_path, "variants", lab=VARIANTS.name, instruments=faster_line,
        budget={"max_experiments": 6},
    )  # fmt: skip
    db = tmp_path / "lab.db"
    result = CliRunner().invoke(app, ["run", str(path), "--db", str(db), "--no-live"])
    assert result.exit_code == 0, result.output
    experiments = Store(db).experiments("variants")
    assert len(experiments) == 6
    assert all(e.state == ExperimentState.ANALYSED for e in experiments), [
        (e.furnace, e.reason) for e in experiments
    ]
    assert {"furnace2", "furnace4"} & {e.furnace for e in experiments}  # host-stepped ones
