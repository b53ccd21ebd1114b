import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest
from campaign_files import write_campaign
from typer.testing import CliRunner

from athanor import __version__
from athanor.cli import app
from athanor.store import Store

runner = CliRunner()
ROOT = Path(__file__).parent.parent
PR_CAPBSET_DROP = 24  # linux/prctl.h


def test_help_lists_the_command_groups():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("run", "resume", "status", "report", "check", "sim", "plan"):
        assert group in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_installed_entry_point_runs():
    exe = Path(sys.executable).parent / "athanor"
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert __version__ in result.stdout


def test_bad_lab_config_gives_one_paragraph_not_a_traceback(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("name: lab\ninstruments:\n  f1: {kind: furnace, connection: x, unit: [1]}\n")
    result = runner.invoke(app, ["sim", "validate", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "instruments.f1.unit" in result.output


def test_malformed_yaml_on_the_command_line(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text("name: [unclosed\n")
    result = runner.invoke(app, ["sim", "validate", str(path)])
    assert result.exit_code == 2
    assert "not valid YAML" in result.output
    assert "Traceback" not in result.output


def test_sim_validate_lists_instruments():
    result = runner.invoke(app, ["sim", "validate", str(ROOT / "lab_configs" / "sim_lab.yaml")])
    assert result.exit_code == 0, result.output
    assert "furnace1" in result.output and "xrd" in result.output


NEEDS_A_DATABASE = [["status"], ["report", "mini"], ["resume", "mini"], ["analyse", "mini"]]


@pytest.mark.parametrize("command", NEEDS_A_DATABASE, ids=" ".join)
def test_a_mistyped_db_is_refused_and_nothing_is_created(tmp_path, command):
    db = tmp_path / "typo" / "lab.db"
    result = runner.invoke(app, [*command, "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert (
        f"no database at {db}; 'athanor run CAMPAIGN.yaml --db {db}' creates one" in result.output
    )
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("command", [*NEEDS_A_DATABASE, ["run", "CAMPAIGN"]], ids=" ".join)
def test_a_db_that_is_not_a_database_is_a_one_line_error_naming_it(tmp_path, command):
    campaign = str(write_campaign(tmp_path))
    db = tmp_path / "notes.txt"
    db.write_text("shopping: BaCO3, TiO2\n")
    args = [campaign if arg == "CAMPAIGN" else arg for arg in command]
    result = runner.invoke(app, [*args, "--db", str(db)])
    assert result.exit_code == 2, result.output
    assert f"cannot use {db} as an athanor database: file is not a database" in result.output
    assert db.read_text() == "shopping: BaCO3, TiO2\n"


def test_run_names_a_folder_for_its_database_that_it_cannot_make(tmp_path):
    path = write_campaign(tmp_path)
    (tmp_path / "runs").write_text("a file, not a folder\n")
    db = tmp_path / "runs" / "demo" / "lab.db"
    result = runner.invoke(app, ["run", str(path), "--db", str(db), "--no-live"])
    assert result.exit_code == 2, result.output
    assert f"cannot make the folder {db.parent} for the database: Not a directory" in result.output


def drop_root_override() -> None:
    """In a child process: even root then obeys file permissions (no CAP_DAC_OVERRIDE,
    no CAP_DAC_READ_SEARCH), as any other user does."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_status_reads_a_database_its_user_may_not_write(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    store = Store(folder / "lab.db")
    store.create_campaign("mini", config={}, lab={})
    store.close()
    (folder / "lab.db").chmod(0o444)
    folder.chmod(0o555)
    try:
        result = subprocess.run(
            [Path(sys.executable).parent / "athanor", "status", "--db", str(folder / "lab.db")],
            capture_output=True, text=True, check=False,
            preexec_fn=drop_root_override if os.geteuid() == 0 else None,
        )  # fmt: skip
    finally:
        folder.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert "mini" in result.stdout and "created" in result.stdout


@pytest.mark.parametrize("command", [["run", "CAMPAIGN", "--no-live"], ["resume", "mini"]])
def test_a_database_its_user_may_not_write_is_refused_by_what_writes_it(tmp_path, command):
    args = [str(write_campaign(tmp_path)) if arg == "CAMPAIGN" else arg for arg in command]
    folder = tmp_path / "shared"
    folder.mkdir()
    db = folder / "lab.db"
    store = Store(db)
    store.create_campaign("mini", config={}, lab={}, planner_state={"planner": {}})
    store.close()
    db.chmod(0o444)
    try:
        result = subprocess.run(
            [Path(sys.executable).parent / "athanor", *args, "--db", str(db)],
            capture_output=True, text=True, check=False,
            preexec_fn=drop_root_override if os.geteuid() == 0 else None,
        )  # fmt: skip
    finally:
        db.chmod(0o644)
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert f"cannot write the database {db}: this user may not write it or its folder" in message
    assert "Traceback" not in result.stderr


def test_status_of_a_campaign_shows_where_its_samples_went(tmp_path):
    db = tmp_path / "lab.db"
    store = Store(db)
    store.create_campaign("mini", config={}, lab={})
    store.add_sample("mini-001-1", "mini", store.add_experiment("mini", {}, {}).id)
    store.move_sample("mini-001-1", "furnace2", lab_time=1800, by="robot")
    store.move_sample("mini-001-1", "xrd", lab_time=5 * 3600, by="robot")
    store.close()
    result = runner.invoke(app, ["status", "mini", "--db", str(db)])
    assert result.exit_code == 0, result.output
    rows = [line.split("│")[1:-1] for line in result.output.splitlines() if "mini-001-1" in line]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["0.50", "mini-001-1", "rack", "furnace2", "robot"],
        ["5.00", "mini-001-1", "furnace2", "xrd", "robot"],
    ]
    unknown = runner.invoke(app, ["status", "nope", "--db", str(db)])
    assert unknown.exit_code == 2 and "no campaign named 'nope'" in unknown.output
