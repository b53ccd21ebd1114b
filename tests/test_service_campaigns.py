"""Several campaigns on one lab through the lab service: one lease pool, operators' commands."""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict

import httpx
import pytest
from service_fixtures import lab_service, real_server, wait_for

from athanor.store import ExperimentState

S = ExperimentState


def _overlaps(log):
    """Leases of one instrument that overlap in lab time (a double booking)."""
    by_resource = defaultdict(list)
    for record in log:
        by_resource[record.resource].append(record)
    clashes = []
    for records in by_resource.values():
        records.sort(key=lambda r: r.start)
        for before, after in itertools.pairwise(records):
            if before.end is None or before.end > after.start:
                clashes.append((before, after))
    return clashes


@pytest.mark.slow
def test_two_campaigns_share_the_furnaces_and_none_is_double_booked(tmp_path):
    with lab_service(tmp_path) as service:
        manager = service.manager
        manager.submit(service.campaign_yaml("alpha"), "alpha.yaml", "operator-1")
        manager.submit(service.campaign_yaml("beta"), "beta.yaml", "operator-1", priority=5)
        manager.set_priority("alpha", 7)  # while both run
        assert manager.campaign("alpha").priority == 7
        wait_for(lambda: manager.running_count == 0, 300, "both campaigns' ends")
        log = list(manager.pool.log)
        for name in ("alpha", "beta"):
            assert manager.store.campaign(name).status == "finished"
            experiments = manager.store.experiments(name)
            assert len([e for e in experiments if e.state == S.ANALYSED]) >= 8, [
                (e.number, e.state, e.reason) for e in experiments
            ]
        assert not _overlaps(log), _overlaps(log)
        furnaces = {r.resource: set() for r in log if r.resource.startswith("furnace")}
        for r in log:
            if r.resource in furnaces:
                furnaces[r.resource].add(r.holder.rpartition("#")[0])
        assert any(holders >= {"alpha", "beta"} for holders in furnaces.values()), furnaces
        served = {s.name: s for s in manager.records.served()}
        assert served["alpha"].priority == 7 and served["beta"].priority == 5


@pytest.mark.slow
def test_two_operators_pausing_and_resuming_at_once_give_one_outcome(tmp_path):
    with lab_service(tmp_path, time_scale=2_000) as service, real_server(service.manager) as url:
        operator = service.headers("operator")
        with httpx.Client(base_url=url, headers=operator, timeout=120) as client:
            answer = client.post("/campaigns", content=service.campaign_yaml("gamma"))
            assert answer.status_code == 201, answer.text
        answers: list[tuple[str, int]] = []

        def operate(commands):
            with httpx.Client(base_url=url, headers=operator, timeout=120) as client:
                for command in commands:
                    reply = client.post(f"/campaigns/gamma/{command}")
                    answers.append((command, reply.status_code))

        threads = [
            threading.Thread(target=operate, args=(["pause", "resume"] * 5 + ["pause"],)),
            threading.Thread(target=operate, args=(["resume", "pause"] * 5 + ["pause"],)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert all(status == 200 for _, status in answers), answers
        manager = service.manager
        # both ended on a pause: that is what is wanted, stored, and done
        assert manager.campaign("gamma").wanted == "paused"
        wait_for(lambda: manager.store.campaign("gamma").status == "paused", 60, "the pause")
        served = {s.name: s for s in manager.records.served()}
        assert served["gamma"].wanted == "paused"
        with httpx.Client(base_url=url, headers=operator, timeout=120) as client:
            audit = client.get("/audit", headers=service.headers("admin")).json()
            commands = [e for e in audit if e["action"].startswith("POST /campaigns/gamma/")]
            assert len(commands) == len(answers) == 22
            assert client.post("/campaigns/gamma/stop").json()["wanted"] == "stopped"
            wait_for(lambda: manager.running_count == 0, 120, "the stop")
            assert manager.store.campaign("gamma").status == "stopped"
            refused = client.post("/campaigns/gamma/pause")
            assert refused.status_code == 409 and "stopped" in refused.json()["detail"]
