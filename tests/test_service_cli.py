"""`athanor serve` end to end: a real process, the CLI's client commands, a kill, a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from campaign_files import write_campaign
from service_fixtures import free_port, wait_for
from typer.testing import CliRunner

from athanor.cli import app
from athanor.store import ExperimentState, Store
from athanor.store.service import ServiceRecords

S = ExperimentState
EXE = Path(sys.executable).parent / "athanor"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _start(lab: Path, db: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [EXE, "serve", str(lab), "--db", str(db), "--port", str(port)],
        cwd=lab.parent, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def up() -> bool:
        assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 120, "the service")
    return process


def _cli(*args: str, token: str | None = None):  # type: ignore[no-untyped-def]
    env = {"ATHANOR_TOKEN": token} if token else {"ATHANOR_TOKEN": ""}
    return CliRunner().invoke(app, list(args), env=env)


def _experiments(db: Path, name: str):  # type: ignore[no-untyped-def]
    store = Store(db)
    try:
        return store.experiments(name)
    finally:
        store.close()


def _states(db: Path, name: str) -> dict[int, str]:
    return {e.number: e.state for e in _experiments(db, name)}


def _status(db: Path, name: str) -> str:
    store = Store(db)
    try:
        return store.campaign(name).status
    finally:
        store.close()


@pytest.mark.slow
def test_serve_submit_pause_resume_kill_and_restart_from_the_cli(tmp_path):
    path = write_campaign(tmp_path, "delta", time_scale=5_000)
    lab, db, port = tmp_path / "lab.yaml", tmp_path / "service.db", free_port()
    made = subprocess.run(
        [EXE, "serve", str(lab), "--db", str(db), "--init-admin"],
        env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = made.stdout.split()[-1]
    again = _cli("serve", str(lab), "--db", str(db), "--init-admin")
    assert again.exit_code == 2 and "has an admin already" in again.output
    server = f"http://127.0.0.1:{port}"
    process = _start(lab, db, port)
    try:
        anonymous = _cli("submit", str(path), "--server", server)
        assert anonymous.exit_code == 2 and "set ATHANOR_TOKEN or pass --token" in anonymous.output
        broken = write_campaign(tmp_path, "broken", budget={"max_experiments": 0})
        refused = _cli("submit", str(broken), "--server", server, token=token)
        assert refused.exit_code == 2 and "refused, nothing was stored" in refused.output
        assert f"{broken}:" in refused.output and "budget.max_experiments" in refused.output
        elsewhere = _cli("status", "--server", f"http://127.0.0.1:{free_port()}", token=token)
        assert elsewhere.exit_code == 2 and "cannot reach the lab service" in elsewhere.output
        submitted = _cli("submit", str(path), "--server", server, "--token", token)
        assert submitted.exit_code == 0 and "submitted delta" in submitted.output
        for command in ("pause", "resume"):
            done = _cli(command, "delta", "--server", server, token=token)
            assert done.exit_code == 0 and f"{command} taken" in done.output, done.output
        status = _cli("status", "--server", server, token=token)
        assert status.exit_code == 0 and "delta" in status.output
        wait_for(
            lambda: {S.ANALYSED, S.RUNNING} <= set(_states(db, "delta").values()), 180,
            "an experiment analysed while another runs",
        )  # fmt: skip
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    store = Store(db)
    entries_before = len(ServiceRecords(store).audit_log())
    store.close()
    process = _start(lab, db, port)  # the restart resumes the campaign
    try:
        wait_for(lambda: _status(db, "delta") == "finished", 300, "the end")
        experiments = _experiments(db, "delta")
        numbers = [e.number for e in experiments]
        assert numbers == sorted(set(numbers)), "an experiment number appears twice"
        assert len([e for e in experiments if e.state in (S.ANALYSED, S.FAILED)]) == 10
        assert [e for e in experiments if e.state == S.ABANDONED], "the kill cut nothing short"
        shown = _cli("status", "delta", "--server", server, token=token)
        assert shown.exit_code == 0 and "finished" in shown.output
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
            audit = client.get(f"{server}/audit").json()
        assert len(audit) >= entries_before
        actions = [e["action"] for e in audit]
        for action in ("POST /campaigns", "POST /campaigns/delta/pause"):
            assert action in actions
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=120)[0].decode()
        assert process.returncode == 0, output
        assert "stopping every campaign" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
