import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from athanor import __version__
from athanor.cli import app

runner = CliRunner()
ROOT = Path(__file__).parent.parent


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
