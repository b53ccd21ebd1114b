"""One process per lab: a second campaign process on the same instruments is refused,
naming who holds them; a holder that dies, however it dies, frees them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from campaign_files import LAB_CONFIGS, write_campaign
from typer.testing import CliRunner

from athanor.cli import app
from athanor.lab_config import LabConfig, load_lab
from athanor.lab_lock import LabInUse, addresses, hold_lab


def _at_ports_of_their_own(instruments, folder) -> None:
    """The sim lab as a served lab writes it: every instrument at a port of its own."""
    for port, inst in enumerate(instruments.values(), start=15020):
        scheme = "modbus-tcp" if inst["kind"] == "furnace" else "tcp"
        inst["connection"] = f"{scheme}://127.0.0.1:{port}"


@pytest.fixture
def campaign(tmp_path, monkeypatch) -> Path:
    """A campaign on a lab whose instruments are shared (served at fixed ports)."""
    monkeypatch.setenv("ATHANOR_LOCK_DIR", str(tmp_path / "locks"))
    return write_campaign(tmp_path, "second", instruments=_at_ports_of_their_own)


@pytest.fixture
def shared_lab(campaign) -> LabConfig:
    return load_lab(campaign.parent / "lab.yaml")


def test_a_second_process_on_the_same_lab_is_refused_with_who_holds_it(shared_lab):
    with (
        hold_lab(shared_lab, {"campaign": "first", "db": "a.db"}),
        pytest.raises(LabInUse) as refused,
        hold_lab(shared_lab, {"campaign": "second"}),
    ):
        pass
    message = str(refused.value)
    assert "furnace1 (modbus-tcp://127.0.0.1:15020 unit 1) is held by campaign first" in message
    assert f"pid {os.getpid()}" in message and "robot" in message
    with hold_lab(shared_lab, {"campaign": "second"}):  # free again once the first ended
        pass


def test_a_holder_killed_with_sigkill_frees_the_lab(shared_lab, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from athanor.lab_config import load_lab
            from athanor.lab_lock import hold_lab
            with hold_lab(load_lab({str(tmp_path / "lab.yaml")!r}), {{"campaign": "doomed"}}):
                print("held", flush=True)
                time.sleep(600)
        """)],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "ATHANOR_LOCK_DIR": str(tmp_path / "locks")},
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LabInUse, match="campaign doomed"), hold_lab(shared_lab, {}):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    with hold_lab(shared_lab, {"campaign": "next"}):
        pass


def test_emulators_inside_the_process_need_no_lock():
    lab = load_lab(LAB_CONFIGS / "sim_lab.yaml")  # port 0 and pty:// everywhere
    assert addresses(lab) == {}


def test_athanor_run_on_a_lab_in_use_is_refused_before_the_store_or_an_instrument(campaign):
    db = campaign.parent / "lab.db"
    with hold_lab(load_lab(campaign.parent / "lab.yaml"), {"campaign": "first", "db": "a.db"}):
        result = CliRunner().invoke(app, ["run", str(campaign), "--db", str(db), "--no-live"])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "the lab is in use by another process" in message and "campaign first" in message
    assert not db.exists()
