"""`athanor sim serve`: every emulator of a simulated lab as a real server until interrupted."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from athanor.config_files import ConfigError
from athanor.lab import check_lab, simulate
from athanor.lab_config import load_lab

ROOT = Path(__file__).parent.parent
EXE = Path(sys.executable).parent / "athanor"


def _serve(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """Start ``athanor sim serve`` and wait until it has written its lab config."""
    written = tmp_path / "served.yaml"
    sim_lab = str(ROOT / "lab_configs" / "sim_lab.yaml")
    process = subprocess.Popen(
        [EXE, "sim", "serve", sim_lab, "--write-lab", str(written)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not written.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    if not written.exists():
        process.kill()
        out, _ = process.communicate()
        pytest.fail(f"the served lab config was never written:\n{out}")
    return process, written


def _stopped(process: subprocess.Popen) -> str:
    try:
        out, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        pytest.fail(f"sim serve did not stop within 30 s of Ctrl-C:\n{out}")
    assert process.returncode == 0, out
    assert "stopped cleanly" in out, out
    return out


@pytest.mark.slow
def test_serve_prints_connections_answers_any_client_and_stops_cleanly(tmp_path):
    process, written = _serve(tmp_path)
    try:
        served = load_lab(written)
        assert not served.simulated  # a plain lab: its connections are the real ones
        assert all(":0" not in i.connection and "pty://" not in i.connection
                   for i in served.instruments.values())  # fmt: skip
        reports = check_lab(served)
        assert all(r.ok for r in reports), [r.error for r in reports if not r.ok]
    finally:
        process.send_signal(signal.SIGINT)
    assert "furnace1" in _stopped(process)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "tgkill"), reason="needs Linux tgkill")
def test_serve_stops_when_ctrl_c_reaches_an_emulator_thread(tmp_path):
    # The OS may hand a process's SIGINT to any of its threads, not only the main one.
    process, _ = _serve(tmp_path)
    threads = [int(t) for t in os.listdir(f"/proc/{process.pid}/task")]
    other = next(t for t in threads if t != process.pid)
    ctypes.CDLL(None).tgkill(process.pid, other, signal.SIGINT)
    _stopped(process)


def test_a_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        lab = yaml.safe_load((ROOT / "lab_configs" / "sim_lab.yaml").read_text())
        lab["instruments"]["xrd"]["connection"] = f"tcp://127.0.0.1:{port}"
        lab["instruments"]["xrd"]["exchange_dir"] = str(tmp_path / "xrd")
        path = tmp_path / "lab.yaml"
        path.write_text(yaml.safe_dump(lab))
        with simulate(load_lab(path)) as sim, pytest.raises(ConfigError) as err:
            sim.start()
    assert "instruments.xrd.connection" in str(err.value)
    assert str(port) in str(err.value)


def test_a_real_lab_cannot_be_simulated():
    with pytest.raises(ConfigError, match="no 'simulation' section"):
        simulate(load_lab(ROOT / "lab_configs" / "example_real_lab.yaml"))
