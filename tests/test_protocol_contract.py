"""A protocol written outside the package, following the documented contract
(:mod:`athanor.protocols.contract`), gets the same live states and analysis as ours."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from campaign_files import write_campaign
from typer.testing import CliRunner

from athanor.cli import app
from athanor.protocols.contract import Stage, holder_experiment, holder_id, stage_of
from athanor.store import ExperimentState, Store

ROOT = Path(__file__).parent.parent
S = ExperimentState

# A site's own protocol: other plan names for every run, the stages said by the key.
HOUSE_PROTOCOL = '''
import bluesky.plan_stubs as bps

from athanor.devices.transfer import Move, Prepare
from athanor.protocols.anneal import anneal
from athanor.protocols.measure import measure_spectrum, measure_xrd
from athanor.protocols.requests import Request, requires


@requires(oven=Request("furnace"), powder=Request("diffractometer"),
          optics=Request("spectrometer"), arm=Request("transfer", shared=True))
def house_recipe(ctx, *, temperature_c, dwell_h, ramp_c_per_min, ba_ti_ratio=1.0, dopant=0.0):
    """Our own synthesis: the same steps, our own roles and run names."""
    sample, oven, arm = ctx.sample_id, ctx.oven, ctx.arm
    recipe = {"ba_ti_ratio": ba_ti_ratio, "dopant": dopant}
    yield from bps.mv(arm, Prepare(sample, recipe))
    yield from bps.mv(arm, Move(sample, "rack", oven.name))
    yield from anneal(oven, temperature_c, dwell_h, ramp_c_per_min, cool_to=100.0,
                      md=ctx.md(plan_name="house_bake"))
    xrd = yield from ctx.acquire("powder")
    yield from bps.mv(arm, Move(sample, oven.name, xrd.name))
    yield from ctx.release("oven")
    yield from measure_xrd(xrd, sample, md=ctx.md(plan_name="house_powder_scan"))
    uvvis = yield from ctx.acquire("optics")
    yield from bps.mv(arm, Move(sample, xrd.name, "bench"))
    yield from ctx.release("powder")

    def insert():
        yield from bps.mv(arm, Move(sample, "bench", uvvis.name))

    yield from measure_spectrum(uvvis, sample, insert_sample=insert,
                                md=ctx.md(plan_name="house_optics"))
    yield from bps.mv(arm, Move(sample, uvvis.name, "storage"))
    yield from ctx.release("optics")
'''


@pytest.mark.slow
def test_a_protocol_from_outside_the_package_gets_live_states_and_analysis(tmp_path, monkeypatch):
    (tmp_path / "house_protocols.py").write_text(textwrap.dedent(HOUSE_PROTOCOL))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "house_protocols", raising=False)
    path = write_campaign(
        tmp_path, "house", initial_experiments=3, budget={"max_experiments": 3},
        protocol="house_protocols:house_recipe", protocol_args={},
    )  # fmt: skip
    db = tmp_path / "lab.db"
    result = CliRunner().invoke(app, ["run", str(path), "--db", str(db), "--no-live"])
    assert result.exit_code == 0, result.output
    store = Store(db)
    experiments = store.experiments("house")
    assert [e.state for e in experiments] == [S.ANALYSED] * 3, [e.reason for e in experiments]
    outcomes = store.outcomes("house")
    assert all("band_gap_ev" in outcomes[e.id] for e in experiments if e.id is not None)
    for exp in experiments:
        assert exp.id is not None
        states = [change.target for change in store.state_history(exp.id)]
        assert states[-3:] == [S.RUNNING, S.MEASURING, S.ANALYSED], states
    assert {r.plan_name for r in store.runs("house")} == {
        "house_bake", "house_powder_scan", "house_optics"
    }  # fmt: skip


def test_stages_are_read_from_the_start_document_not_the_plan_name():
    assert stage_of({"plan_name": "anything", "athanor_stage": "xrd"}) is Stage.XRD
    assert stage_of({"plan_name": "measure_xrd"}) is Stage.XRD  # stored before the key
    assert stage_of({"plan_name": "house_bake"}) is None
    assert stage_of({"athanor_stage": "no such stage"}) is None


def test_one_holder_id_per_experiment_read_back_the_same_way():
    assert holder_id("batio3-demo", 7) == "batio3-demo#7"
    assert holder_experiment(holder_id("a#b", 12)) == 12
    assert holder_experiment("operator") is None
