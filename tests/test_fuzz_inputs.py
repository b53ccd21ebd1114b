"""Property: any campaign, lab or ``plan check`` input is accepted, or refused with a
located message (file, key or parameter); never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from campaign_files import LAB_CONFIGS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from athanor.cli import app
from athanor.config import check_with_lab, load_campaign
from athanor.config_files import ConfigError
from athanor.lab_config import load_lab

DEMO = yaml.safe_load((LAB_CONFIGS / "campaigns" / "demo.yaml").read_text())
SIM_LAB = yaml.safe_load((LAB_CONFIGS / "sim_lab.yaml").read_text())
FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a nested config."""
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            out += paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += paths(value, (*prefix, i))
    return out


def mutated(base: dict[str, Any], draw: Any) -> dict[str, Any]:
    """``base`` with one value somewhere replaced by an arbitrary one."""
    data = yaml.safe_load(yaml.safe_dump(base))
    *parent, key = draw(st.sampled_from(paths(data)))
    target = data
    for k in parent:
        target = target[k]
    target[key] = draw(values)
    return data


def assert_located(message: str, path: Path) -> None:
    assert str(path) in message or "protocol" in message, message
    assert "Traceback" not in message


@FAST
@given(data=st.data())
def test_any_campaign_is_accepted_or_refused_with_its_location(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("campaign")
    lab = {**SIM_LAB, "instruments": {**SIM_LAB["instruments"]}}
    lab["instruments"]["xrd"] = {**lab["instruments"]["xrd"], "exchange_dir": str(folder / "xrd")}
    (folder / "lab.yaml").write_text(yaml.safe_dump(lab))
    campaign = mutated({**DEMO, "lab": "lab.yaml"}, data.draw)
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(campaign))
    try:
        config = load_campaign(path)
        check_with_lab(config, load_lab(config.lab_path()))
    except ConfigError as exc:
        assert_located(str(exc), path)


@FAST
@given(data=st.data())
def test_any_lab_is_accepted_or_refused_with_its_location(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("lab") / "lab.yaml"
    path.write_text(yaml.safe_dump(mutated(SIM_LAB, data.draw)))
    try:
        lab = load_lab(path)
    except ConfigError as exc:
        assert_located(str(exc), path)
    else:
        assert lab.instruments


runner = CliRunner()
PARAMS = ["temperature_c", "dwell_h", "ramp_c_per_min", "ba_ti_ratio", "dopant", "program",
          "integration_time", "averages", "colour"]  # fmt: skip
texts = st.one_of(
    st.text(max_size=12), st.floats().map(str), st.integers(-(10**20), 10**20).map(str)
)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(PARAMS), texts, max_size=4))
def test_any_plan_check_is_a_dry_run_or_a_refusal_naming_the_parameter(changes):
    params = {"temperature_c": "1000", "dwell_h": "1", "ramp_c_per_min": "5", **changes}
    args = [a for k, v in params.items() for a in ("-p", f"{k}={v}")]
    result = runner.invoke(app, ["plan", "check", "synthesize_and_characterize", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    if result.exit_code == 0:
        assert "no limit violated" in result.output
    else:
        assert result.exit_code in (1, 2), result.output
        assert "error:" in result.output and any(p in result.output for p in params)
