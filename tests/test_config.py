from pathlib import Path

import pytest

from athanor.config import load_campaign
from athanor.config_files import ConfigError
from athanor.lab_config import load_lab

LAB_CONFIGS = Path(__file__).parent.parent / "lab_configs"


@pytest.mark.parametrize("name", ["sim_lab.yaml", "example_real_lab.yaml"])
def test_shipped_lab_configs_load(name):
    lab = load_lab(LAB_CONFIGS / name)
    assert lab.instruments
    assert lab.of_kind("furnace")


def test_sim_lab_has_the_default_instruments():
    lab = load_lab(LAB_CONFIGS / "sim_lab.yaml")
    assert lab.simulated
    assert len(lab.of_kind("furnace")) >= 4
    assert len(lab.of_kind("diffractometer")) == 1
    assert len(lab.of_kind("spectrometer")) == 1
    assert len(lab.of_kind("transfer")) == 1


def test_malformed_yaml_names_file_and_line(write_yaml):
    path = write_yaml("name: lab\ninstruments:\n  f1: [a, b\n  x: 1\n")
    with pytest.raises(ConfigError) as err:
        load_lab(path)
    message = str(err.value)
    assert f"{path}:4" in message
    assert "not valid YAML" in message


def test_wrong_type_names_key_line_value_and_what_is_allowed(write_yaml):
    path = write_yaml(
        "name: lab\n"
        "instruments:\n"
        "  f1:\n"
        "    kind: furnace\n"
        "    connection: modbus-tcp://127.0.0.1:5020\n"
        "    unit: 900\n"
    )
    with pytest.raises(ConfigError) as err:
        load_lab(path)
    message = str(err.value)
    assert f"{path}:6" in message
    assert "instruments.f1.unit" in message
    assert "900" in message
    assert "254" in message  # the allowed upper bound


def test_unknown_key_is_an_error(write_yaml):
    path = write_yaml(
        "name: lab\ninstruments:\n  f1:\n    kind: furnace\n"
        "    connection: /dev/ttyUSB0\n    colour: red\n"
    )
    with pytest.raises(ConfigError, match=r"instruments\.f1\.colour: unknown key"):
        load_lab(path)


def test_unknown_instrument_kind_lists_the_kinds(write_yaml):
    path = write_yaml("name: lab\ninstruments:\n  f1: {kind: oven, connection: /dev/ttyS0}\n")
    with pytest.raises(ConfigError, match=r"'oven' is not a known kind.*furnace"):
        load_lab(path)


@pytest.mark.parametrize(
    ("url", "hint"),
    [("http://x:1", "unknown scheme"), ("modbus-tcp://127.0.0.1", "names no port")],
)
def test_bad_connection_url(write_yaml, url, hint):
    path = write_yaml(f"name: lab\ninstruments:\n  f1: {{kind: furnace, connection: '{url}'}}\n")
    with pytest.raises(ConfigError, match=hint):
        load_lab(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_lab(tmp_path / "nope.yaml")


def test_top_level_must_be_a_mapping(write_yaml):
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_lab(write_yaml("- a\n- b\n"))


CAMPAIGN = """\
name: demo
lab: ../lab_configs/sim_lab.yaml
protocol: synthesize_and_characterize
search_space:
  parameters:
    - {name: temperature, type: continuous, low: 600, high: 1100, unit: degC}
    - {name: dwell, type: continuous, low: 0.5, high: 12, log: true, unit: h}
    - {name: x_ba, type: continuous, low: 0, high: 1}
    - {name: x_sr, type: continuous, low: 0, high: 1}
  compositions:
    - {name: cations, components: [x_ba, x_sr], total: 1}
  constraints:
    - "temperature + 40*dwell <= 1500"
objectives:
  - {name: target_fraction, goal: maximize}
outcomes: {target_fraction: fraction_BaTiO3}
budget: {max_experiments: 40}
"""


def test_campaign_loads_with_space_and_constraints(write_yaml):
    campaign = load_campaign(write_yaml(CAMPAIGN))
    space = campaign.search_space
    assert space.names == ["temperature", "dwell", "x_ba", "x_sr"]
    assert space.constraints[0].coefficients == {"temperature": 1.0, "dwell": 40.0}
    assert space.constraints[0].rhs == 1500
    assert campaign.lab_path().name == "sim_lab.yaml"


@pytest.mark.parametrize(
    ("old", "new", "hint"),
    [
        ("low: 600, high: 1100", "low: 1100, high: 600", "must be below high"),
        (
            "components: [x_ba, x_sr]",
            "components: [x_ba, x_ca]",
            "'x_ca', which is not a parameter",
        ),
        ("40*dwell <= 1500", "40*dwel <= 1500", "'dwel', which is not"),
        ("max_experiments: 40", "max_experiments: 0", "budget.max_experiments"),
        ("goal: maximize", "goal: maximise", "goal"),
    ],
)
def test_campaign_errors_name_the_problem(write_yaml, old, new, hint):
    assert old in CAMPAIGN
    with pytest.raises(ConfigError, match=hint):
        load_campaign(write_yaml(CAMPAIGN.replace(old, new)))


def test_initial_design_larger_than_budget_is_refused(write_yaml):
    text = CAMPAIGN + "initial_experiments: 50\n"
    with pytest.raises(ConfigError, match="initial_experiments"):
        load_campaign(write_yaml(text))
