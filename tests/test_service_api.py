"""The lab service's REST API: tokens and roles, clear refusals, the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from service_fixtures import lab_service

from athanor.service.app import create_app
from athanor.service.auth import FAILED_LIMIT
from athanor.service.middleware import MAX_BODY
from athanor.store.models import utcnow


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with lab_service(tmp_path_factory.mktemp("api")) as service:
        yield service


@pytest.fixture
def client(service):
    """A client with a fresh app (so failed logins are counted afresh)."""
    with TestClient(create_app(service.manager)) as client:
        yield client


def test_health_is_anonymous_and_the_openapi_schema_is_served(client):
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["lab"] == "simulated-lab"
    schema = client.get("/openapi.json").json()
    assert {"/campaigns", "/campaigns/{name}/{command}", "/instruments"} <= set(schema["paths"])


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/campaigns"), ("GET", "/instruments"), ("POST", "/campaigns"),
     ("POST", "/campaigns/x/pause"), ("GET", "/users"), ("GET", "/audit")],
)  # fmt: skip
def test_everything_but_health_needs_a_token(client, method, path):
    answer = client.request(method, path)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "Authorization: Bearer" in answer.json()["detail"]
    unknown = client.request(method, path, headers={"Authorization": "Bearer ath_nope"})
    assert unknown.status_code == 401 and "unknown token" in unknown.json()["detail"]


def test_a_viewer_reads_but_may_not_change_state(client, service):
    viewer = service.headers("viewer")
    assert client.get("/campaigns", headers=viewer).status_code == 200
    assert client.get("/me", headers=viewer).json() == {"user": "viewer-1", "role": "viewer"}
    for method, path in [("POST", "/campaigns"), ("POST", "/campaigns/x/pause"),
                         ("PUT", "/campaigns/x/priority"), ("GET", "/users")]:  # fmt: skip
        answer = client.request(method, path, headers=viewer, content="name: x")
        assert answer.status_code == 403, (method, path)
        assert "viewer-1" in answer.json()["detail"] and "is a viewer" in answer.json()["detail"]
    operator = service.headers("operator")
    assert client.get("/users", headers=operator).status_code == 403


def test_instruments_show_their_holder_and_last_readings(client, service):
    answer = client.get("/instruments", headers=service.headers("viewer"))
    assert answer.status_code == 200
    instruments = {i["name"]: i for i in answer.json()}
    assert set(instruments) >= {"furnace1", "xrd", "uvvis", "robot"}
    assert instruments["furnace1"]["readings"]["temperature_c"] is not None
    assert instruments["xrd"]["holder"] is None


def test_tokens_of_a_deleted_user_and_expired_tokens_are_refused(client, service):
    admin = service.headers("admin")
    made = client.post("/users", json={"name": "temp", "role": "operator"}, headers=admin)
    assert made.status_code == 201
    token = made.json()["token"]
    assert token.startswith("ath_")
    assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.delete("/users/temp", headers=admin).status_code == 204
    gone = client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401
    records = service.manager.records
    records.add_user("old", "viewer")
    expired, _ = records.new_token("old", expires_at=utcnow() - timedelta(minutes=1))
    late = client.get("/me", headers={"Authorization": f"Bearer {expired}"})
    assert late.status_code == 401 and "expired" in late.json()["detail"]
    stored = [t.digest for t in _tokens(service)]
    assert token not in stored and expired not in stored  # only digests are kept


def _tokens(service):
    from sqlmodel import select

    from athanor.store.models import ApiToken

    with service.manager.store.transaction() as session:
        return list(session.exec(select(ApiToken)).all())


def test_failed_logins_are_rate_limited(client, service):
    for _ in range(FAILED_LIMIT):
        assert client.get("/me", headers={"Authorization": "Bearer wrong"}).status_code == 401
    refused = client.get("/me", headers=service.headers("viewer"))  # even a good token
    assert refused.status_code == 429 and "too many failed logins" in refused.json()["detail"]
    assert int(refused.headers["Retry-After"]) > 0
    assert client.get("/health").status_code == 200


def test_an_invalid_campaign_is_422_with_located_errors_and_nothing_is_stored(client, service):
    text = service.campaign_yaml("broken", budget={"max_experiments": -1})
    answer = client.post(
        "/campaigns", content=text, headers=service.headers("operator"),
        params={"source": "broken.yaml"},
    )  # fmt: skip
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert "broken.yaml:" in detail and "budget.max_experiments" in detail, detail
    for bad, says in [("name: [", "not valid YAML"), ("- a list", "must be a mapping"),
                      ("name: x\nname: y", "given twice")]:  # fmt: skip
        answer = client.post("/campaigns", content=bad, headers=service.headers("operator"))
        assert answer.status_code == 422 and says in answer.json()["detail"]
    assert client.get("/campaigns", headers=service.headers("viewer")).json() == []
    assert [c.name for c in service.manager.store.campaigns()] == []


def test_bad_fields_are_named_with_their_value(client, service):
    answer = client.put(
        "/campaigns/x/priority", json={"priority": "high"}, headers=service.headers("operator")
    )
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("body.priority: 'high' is not allowed")
    unknown = client.post("/campaigns/x/explode", headers=service.headers("operator"))
    assert unknown.status_code == 422 and "'explode'" in unknown.json()["detail"]


def test_an_oversized_body_is_refused(client, service):
    answer = client.post(
        "/campaigns", content=b"#" * (MAX_BODY + 1), headers=service.headers("operator")
    )
    assert answer.status_code == 413 and "over the limit" in answer.json()["detail"]

    def chunks():  # no Content-Length: counted as it comes
        for _ in range(MAX_BODY // 1000 + 2):
            yield b"#" * 1000

    chunked = client.post("/campaigns", content=chunks(), headers=service.headers("operator"))
    assert chunked.status_code == 413


def test_sql_metacharacters_in_names_are_harmless(client, service):
    operator, admin = service.headers("operator"), service.headers("admin")
    name = "x'; DROP TABLE campaign; --"
    answer = client.post(f"/campaigns/{name}/pause", headers=operator)
    assert answer.status_code == 404 and repr(name) in answer.json()["detail"]
    answer = client.post("/users", json={"name": "o'brien\"; --", "role": "viewer"}, headers=admin)
    assert answer.status_code == 422 and "body.name" in answer.json()["detail"]
    answer = client.post("/users/a' OR '1'='1/tokens", json={}, headers=admin)
    assert answer.status_code == 404
    assert client.get("/campaigns", headers=operator).status_code == 200  # tables intact
    assert "viewer-1" in [u["name"] for u in client.get("/users", headers=admin).json()]


def test_every_state_changing_call_is_audited_with_who_what_and_where(client, service):
    operator = service.headers("operator")
    client.put("/campaigns/nope/priority", json={"priority": 3}, headers=operator)
    client.post("/campaigns/nope/stop", headers=service.headers("viewer"))
    client.post("/campaigns/nope/abort")
    entries = client.get("/audit", headers=service.headers("admin")).json()[:3]
    assert [(e["user"], e["action"], e["status"]) for e in entries] == [
        ("", "POST /campaigns/nope/abort", 401),
        ("viewer-1", "POST /campaigns/nope/stop", 403),
        ("operator-1", "PUT /campaigns/nope/priority", 404),
    ]
    assert entries[2]["detail"] == {"priority": 3}
    assert all(e["client"].startswith("testclient") for e in entries)
