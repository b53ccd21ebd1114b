"""`athanor check`: every instrument probed over its wire, unreachable ones named."""

from __future__ import annotations

import json
import socket
import time

import pytest
from typer.testing import CliRunner

from athanor.cli import app
from athanor.clock import ScaledClock
from athanor.simulators.aeris import AerisEmulator
from athanor.simulators.eurotherm import EurothermEmulator
from athanor.simulators.hosting import BackgroundLoop
from athanor.simulators.ocean_optics import OceanOpticsEmulator
from athanor.simulators.world import FixedTruth


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab")
    clock = ScaledClock(3600)
    with BackgroundLoop() as loop:
        furnace = loop.start(
            EurothermEmulator("f1", "eurotherm3216", 1, "socket://127.0.0.1:0", clock)
        )
        xrd = loop.start(AerisEmulator(folder / "xrd", FixedTruth(), clock))
        uvvis = loop.start(OceanOpticsEmulator("pty://", {"model": "usb2000plus"}, clock=clock))
        path = folder / "lab.yaml"
        path.write_text(
            f"""\
name: probe-lab
clock: {{time_scale: 3600}}
instruments:
  furnace1: {{kind: furnace, model: eurotherm3216, connection: '{furnace}', unit: 1}}
  furnace2:
    kind: furnace
    connection: modbus-tcp://127.0.0.1:{closed_port()}
    io_timeout: 0.2
  xrd: {{kind: diffractometer, connection: '{xrd}', exchange_dir: '{folder / "xrd"}'}}
  uvvis: {{kind: spectrometer, model: usb2000plus, connection: '{uvvis}'}}
"""
        )
        yield path


def test_check_prints_identity_state_and_readings_and_names_the_unreachable(lab_file):
    start = time.monotonic()
    result = CliRunner().invoke(app, ["check", str(lab_file)])
    assert time.monotonic() - start < 30
    assert result.exit_code == 1, result.output
    out = result.output
    assert "furnace1" in out and "temperature" in out and "auto" in out
    assert "xrd" in out and "ready" in out
    assert "uvvis" in out and "2048" in out
    assert "furnace2" in out and "unreachab" in out, out


def test_check_json_for_scripts(lab_file):
    result = CliRunner().invoke(app, ["check", str(lab_file), "--json"])
    reports = {r["name"]: r for r in json.loads(result.output)}
    assert reports["furnace1"]["ok"] and reports["furnace1"]["readings"]["temperature °C"] > 0
    assert reports["xrd"]["ok"] and reports["uvvis"]["ok"]
    assert not reports["furnace2"]["ok"] and "ConnectionLost" in reports["furnace2"]["error"]
