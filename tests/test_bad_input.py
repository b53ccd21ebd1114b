"""Every user mistake is refused before anything moves: file, key, value, what is allowed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from campaign_files import LAB_CONFIGS, write_campaign
from typer.testing import CliRunner

from athanor.cli import app
from athanor.config import check_with_lab, load_campaign
from athanor.config_files import ConfigError
from athanor.lab_config import load_lab
from athanor.store import Store, StoreError

runner = CliRunner()
DEMO = yaml.safe_load((LAB_CONFIGS / "campaigns" / "demo.yaml").read_text())


def space(**bounds: dict[str, Any]) -> dict[str, Any]:
    """The demo's search space with some parameters changed."""
    params = [{**p, **bounds.get(p["name"], {})} for p in DEMO["search_space"]["parameters"]]
    return {"parameters": params}


def checked(folder: Path, **changes: Any) -> None:
    """Load a campaign written with ``changes`` and check it against its lab, as run does."""
    config = load_campaign(write_campaign(folder, **changes))
    check_with_lab(config, load_lab(config.lab_path()))


def refused(folder: Path, **changes: Any) -> str:
    with pytest.raises(ConfigError) as err:
        checked(folder, **changes)
    return str(err.value)


@pytest.mark.parametrize(
    ("bounds", "key", "allowed"),
    [
        ({"temperature_c": {"low": 800, "high": 1600}}, "parameters.0.high", "allowed: 0–1150 °C"),
        ({"temperature_c": {"low": -100, "high": 1000}}, "parameters.0.low", "greater than 0"),
        ({"ramp_c_per_min": {"low": 0, "high": 20}}, "parameters.2.low", "greater than 0"),
        (
            {"ramp_c_per_min": {"low": 30, "high": 90}},
            "parameters.2.low",
            "allowed: at most 20 °C/min",
        ),
        ({"dwell_h": {"low": 1, "high": 1e9}}, "parameters.1.high", "less than or equal to 1000"),
        ({"ba_ti_ratio": {"low": -1, "high": 1.1}}, "parameters.3.low", "greater than 0"),
    ],
)
def test_a_search_space_the_lab_cannot_run_is_refused(tmp_path, bounds, key, allowed):
    message = refused(tmp_path, search_space=space(**bounds))
    assert "mini.yaml:" in message and f"search_space.{key}" in message
    assert allowed in message


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        ({"integration_time": "abc"}, "valid number"),
        ({"integration_time": -5}, "greater than or equal to 1"),
        ({"program": "nonexistent"}, "it has 10-100_8-minutes"),
        ({"averages": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_protocol_args_are_refused_naming_key_and_value(tmp_path, args, allowed):
    message = refused(tmp_path, protocol_args=args)
    name, value = next(iter(args.items()))
    assert f"protocol_args.{name}" in message and repr(value) in message
    assert allowed in message


@pytest.mark.parametrize(
    ("changes", "hint"),
    [
        ({"objectives": [{"name": "sparkle", "goal": "maximize"}], "derived": {}}, "'sparkle'"),
        (
            {"derived": {"score": {"product": [{"outcome": "fraction_Unobtainium"}]}}},
            "derived.score uses the outcome 'fraction_Unobtainium'",
        ),
        ({"analysis": {"xrd": "xrd.magic"}}, "'xrd.magic' is not a method for xrd"),
        ({"name": "a" * 5000}, "at most 64 characters"),
        ({"stopping": {"objective_reaches": float("nan")}}, "stopping.objective_reaches"),
        ({"seed": 10**30}, "seed"),
        (
            {"search_space": {**space(), "constraints": ["temperature_c + 40*dwell_h <= nan"]}},
            "must be finite numbers",
        ),
    ],
)
def test_campaign_mistakes_found_when_the_file_is_read(tmp_path, changes, hint):
    path = write_campaign(tmp_path, name="mini")
    data = yaml.safe_load(path.read_text())
    data.update(changes)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_campaign(path)
    assert hint in str(err.value)
    assert len(str(err.value)) < 2000  # a long value is shortened, not printed whole


def test_a_key_given_twice_is_refused_naming_both_lines(write_yaml):
    path = write_yaml("name: a\nlab: x.yaml\nname: b\n")
    with pytest.raises(
        ConfigError, match=r"config.yaml:3: name: the key is given twice, on lines 1 and 3"
    ):
        load_campaign(path)


def test_nan_wavelength_coefficients_are_refused(write_yaml):
    path = write_yaml(
        "name: lab\ninstruments:\n  uv:\n    kind: spectrometer\n    connection: /dev/ttyS0\n"
        "    wavelength_coefficients: [.nan, 0.3, 0, 0]\n"
    )
    with pytest.raises(ConfigError, match=r"wavelength_coefficients\.0"):
        load_lab(path)


def test_a_simulated_furnace_on_a_serial_device_is_refused(tmp_path):
    def serial(instruments: dict[str, Any], folder: Path) -> None:
        instruments["furnace1"]["connection"] = "/dev/ttyNOPE0"

    path = write_campaign(tmp_path, instruments=serial)
    result = runner.invoke(app, ["run", str(path), "--db", str(tmp_path / "x.db"), "--no-live"])
    assert result.exit_code == 2, result.output
    assert "instruments.furnace1.connection: '/dev/ttyNOPE0' is a serial device" in result.output
    assert not (tmp_path / "x.db").exists()


def test_an_exchange_dir_that_cannot_be_made_names_the_key(tmp_path):
    (tmp_path / "blocked").write_text("a file where a folder should be\n")

    def blocked(instruments: dict[str, Any], folder: Path) -> None:
        instruments["xrd"]["exchange_dir"] = str(folder / "blocked" / "xrd")

    message = refused(tmp_path, instruments=blocked)
    assert "instruments.xrd.exchange_dir" in message and "port" not in message


@pytest.mark.parametrize(
    ("param", "hint"),
    [
        ("ba_ti_ratio=-1", "greater than 0"),
        ("ba_ti_ratio=abc", "valid number"),
        ("dopant=5", "less than 1"),
        ("integration_time=-5", "greater than or equal to 1"),
        ("integration_time=0", "greater than or equal to 1"),
        ("integration_time=1e12", "less than or equal to 65535"),
        ("program=nonexistent", "no such scan program"),
        ("averages=2.5", "valid integer"),
        ("temperature_c=hot", "valid number"),
        ("temperature_c=1000=2", "valid number"),
        ("temperature_c=1600", "limit violation: limits.max_temperature of furnace1 is 1150 °C"),
    ],
)
def test_plan_check_refuses_what_run_refuses(param, hint):
    name = param.partition("=")[0]
    base = {"temperature_c": "1000", "dwell_h": "1", "ramp_c_per_min": "5"}
    base.pop(name, None)
    args = [a for k, v in base.items() for a in ("-p", f"{k}={v}")]
    result = runner.invoke(
        app, ["plan", "check", "synthesize_and_characterize", *args, "-p", param]
    )
    assert result.exit_code == 1, result.output
    assert "refused before anything moves" in result.output and f"parameter {name}" in result.output
    assert hint in result.output
    assert "no limit violated" not in result.output


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["synthesize_and_characterize", "-p", "temperature_c="], "write NAME=VALUE"),
        (["json:loads"], "is not a protocol plan"),
    ],
)
def test_plan_check_refuses_what_is_no_plan_or_no_value(args, hint):
    result = runner.invoke(app, ["plan", "check", *args])
    assert result.exit_code == 2, result.output
    assert hint in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_plan_check_on_a_lab_without_furnaces_says_so(tmp_path):
    def no_furnaces(instruments: dict[str, Any], folder: Path) -> None:
        for name in [n for n in instruments if n.startswith("furnace")]:
            del instruments[name]

    write_campaign(tmp_path, instruments=no_furnaces)
    result = runner.invoke(
        app,
        ["plan", "check", "synthesize_and_characterize", "--lab", str(tmp_path / "lab.yaml"),
         "-p", "temperature_c=1000", "-p", "dwell_h=1", "-p", "ramp_c_per_min=5"],
    )  # fmt: skip
    assert result.exit_code == 1 or result.exit_code == 2, result.output
    assert "requests a furnace" in result.output


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("mysql://user@localhost/athanor", "'mysql' databases are not supported"),
        ("postgresql://user@localhost/athanor", "needs the database driver"),
    ],
)
def test_an_unusable_database_url_is_a_store_error(url, hint):
    pytest.importorskip("sqlalchemy")
    if "postgresql" in url:
        try:
            import psycopg  # noqa: F401

            pytest.skip("the postgres extra is installed")
        except ImportError:
            pass
    with pytest.raises(StoreError, match=hint):
        Store(url, "read")
    result = runner.invoke(app, ["status", "--db", url])
    assert result.exit_code == 2 and hint in result.output


def test_resume_names_the_keys_edited_since_the_start(tmp_path):
    path = write_campaign(tmp_path)
    db = tmp_path / "lab.db"
    config = load_campaign(path)
    store = Store(db)
    store.create_campaign(
        config.name, config.model_dump(mode="json"),
        load_lab(config.lab_path()).model_dump(mode="json"),
    )  # fmt: skip
    store.update_campaign(config.name, status="finished")
    store.close()
    data = yaml.safe_load(path.read_text())
    data["budget"]["max_experiments"] = 20
    data["seed"] = 5
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["resume", str(path), "--db", str(db), "--no-live"])
    assert "ignored: budget.max_experiments differs" in result.output
    assert "ignored: seed differs" in result.output


def write_real_campaign(folder: Path, connection: str) -> Path:
    """A campaign on a real (not simulated) lab whose furnace1 is at ``connection``."""
    path = write_campaign(folder)
    lab = yaml.safe_load((folder / "lab.yaml").read_text())
    del lab["simulation"]
    lab["instruments"]["furnace1"]["connection"] = connection
    (folder / "xrd").mkdir()
    (folder / "lab.yaml").write_text(yaml.safe_dump(lab, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("connection", "check"),
    [
        ("/dev/ttyNOPE0", "Check that /dev/ttyNOPE0 exists, its cable is plugged in"),
        ("modbus-tcp://127.0.0.1:1", "Check that the instrument is on and 127.0.0.1:1 reachable"),
    ],
)
def test_an_instrument_that_cannot_be_opened_is_named_with_what_to_check(
    tmp_path, connection, check
):
    path = write_real_campaign(tmp_path, connection)
    result = runner.invoke(app, ["run", str(path), "--db", str(tmp_path / "x.db"), "--no-live"])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert re.search(r"lab.yaml:\d+: instruments.furnace1.connection: furnace1 \(furnace", message)
    assert f"cannot be used at {connection!r}" in message and check in message
    assert f"'athanor check {tmp_path / 'lab.yaml'}' probes every instrument" in message
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    ("second", "key", "hint"),
    [
        (
            {"kind": "furnace", "connection": "/dev/ttyUSB0", "unit": 1},
            "connection",
            "'/dev/ttyUSB0' unit 1 is furnace_a's too: two entries for one instrument",
        ),
        (
            {"kind": "furnace", "connection": "/dev/ttyUSB0", "unit": 2},
            "connection",
            "'/dev/ttyUSB0' unit 2 is furnace_b's too",
        ),
        (
            {"kind": "spectrometer", "connection": "/dev/ttyUSB0"},
            "connection",
            "'/dev/ttyUSB0' is furnace_a's too",
        ),
        (
            {"kind": "diffractometer", "connection": "tcp://192.0.2.11:702",
             "exchange_dir": "/mnt/aeris/exchange/"},
            "exchange_dir",
            "'/mnt/aeris/exchange/' is aeris's folder too; each diffractometer needs a folder",
        ),
    ],
)  # fmt: skip
def test_one_instrument_entered_twice_is_refused_naming_both(tmp_path, second, key, hint):
    lab = yaml.safe_load((LAB_CONFIGS / "example_real_lab.yaml").read_text())
    lab["instruments"]["twin"] = second
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(lab, sort_keys=False))
    result = runner.invoke(app, ["sim", "validate", str(path)])
    assert result.exit_code == 2, result.output
    lines = path.read_text().splitlines()
    twin = lines.index("  twin:")
    line = 1 + next(i for i in range(twin, len(lines)) if lines[i].strip().startswith(f"{key}:"))
    message = " ".join(result.output.split())
    assert f"lab.yaml:{line}: instruments.twin.{key}: {hint}" in message


@pytest.mark.parametrize("kind", ["diffractometer", "spectrometer", "transfer"])
def test_a_lab_without_an_instrument_the_protocol_requests_is_refused(tmp_path, kind):
    def without(instruments: dict[str, Any], folder: Path) -> None:
        for name in [n for n, inst in instruments.items() if inst["kind"] == kind]:
            del instruments[name]

    message = refused(tmp_path, instruments=without)
    assert "mini.yaml:" in message and f"requests a {kind} (role '{kind}')" in message
    assert "has none (it has" in message


def test_furnaces_may_share_a_modbus_line_at_different_units():
    lab = load_lab(LAB_CONFIGS / "example_real_lab.yaml")
    assert {lab.instruments[n].connection for n in ("furnace_a", "furnace_b")} == {"/dev/ttyUSB0"}


def test_the_campaign_check_is_the_one_run_makes(tmp_path):
    from athanor.campaign.session import check_campaign

    config = load_campaign(write_campaign(tmp_path, protocol_args={"averages": 0}))
    with pytest.raises(ConfigError, match=r"mini.yaml:\d+: protocol_args.averages: .* 0 is not"):
        check_campaign(config, load_lab(config.lab_path()))


def test_a_dry_run_checks_its_values_as_a_campaign_does():
    from athanor.campaign.dryrun import dry_run
    from athanor.protocols.parameters import ArgumentError

    params = {"temperature_c": "1000", "dwell_h": "1", "ramp_c_per_min": "5", "dopant": "5"}
    with pytest.raises(ArgumentError, match="parameter dopant: '5' is not allowed"):
        dry_run("synthesize_and_characterize", params, load_lab(LAB_CONFIGS / "sim_lab.yaml"))


def test_a_dry_run_writes_nothing_into_the_labs_folders(tmp_path):
    from athanor.campaign.dryrun import dry_run

    lab = yaml.safe_load((LAB_CONFIGS / "example_real_lab.yaml").read_text())
    lab["instruments"]["aeris"]["exchange_dir"] = str(tmp_path / "exchange")
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(lab))
    params = {"temperature_c": 1000, "dwell_h": 1, "ramp_c_per_min": 5}
    result = dry_run("synthesize_and_characterize", params, load_lab(tmp_path / "lab.yaml"))
    assert result.duration > 0
    assert not (tmp_path / "exchange").exists()


def test_resume_of_a_campaign_whose_creation_was_cut_short_says_so(tmp_path):
    path = write_campaign(tmp_path)
    db = tmp_path / "lab.db"
    config = load_campaign(path)
    store = Store(db)  # what a creation in two steps left when the disk filled up
    store.create_campaign(
        config.name, config.model_dump(mode="json"),
        load_lab(config.lab_path()).model_dump(mode="json"),
    )  # fmt: skip
    store.close()
    result = runner.invoke(app, ["resume", "mini", "--db", str(db), "--no-live"])
    assert result.exit_code == 2, result.output
    assert "campaign 'mini' in" in result.output and "was never fully created" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.slow
def test_an_edit_that_is_not_a_number_is_refused_at_the_prompt_and_asked_again(tmp_path):
    path = write_campaign(tmp_path, budget={"max_experiments": 1}, initial_experiments=1)
    db = tmp_path / "lab.db"
    answers = "edit\nhot\n\n\n\n\n" + "950\n\n\n\n\n"
    result = runner.invoke(
        app, ["run", str(path), "--db", str(db), "--no-live", "--approve"], input=answers
    )
    assert result.exit_code == 0, result.output
    message = " ".join(result.output.split())
    assert "refused: edited proposal.temperature_c: 'hot' is not a number; edit again" in message
    (experiment,) = Store(db).experiments("mini")
    assert experiment.params["temperature_c"] == 950.0
