import sqlite3

import pytest
from bluesky import RunEngine
from bluesky.plans import count
from event_model import DocumentNames, schema_validators
from ophyd.sim import det
from sqlalchemy import event

from athanor.store import ExperimentState, Outcome, Store, StoreError, TransitionError

S = ExperimentState


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "lab.db")
    store.create_campaign("demo", config={"name": "demo"}, lab={"name": "sim"}, seed=3)
    yield store
    store.close()


def test_experiment_moves_through_states_and_keeps_its_history(store):
    exp = store.add_experiment("demo", {"temperature": 900.0}, {"model": "sobol"})
    assert exp.number == 1 and exp.state == S.QUEUED
    store.transition(exp.id, S.RUNNING, furnace="furnace1", lab_time=10.0)
    store.transition(exp.id, S.MEASURING)
    store.transition(exp.id, S.ANALYSED)
    history = [(c.source, c.target) for c in store.state_history(exp.id)]
    assert history == [
        (None, S.PROPOSED),
        (S.PROPOSED, S.QUEUED),
        (S.QUEUED, S.RUNNING),
        (S.RUNNING, S.MEASURING),
        (S.MEASURING, S.ANALYSED),
    ]
    final = store.experiment(exp.id)
    assert final.furnace == "furnace1" and final.attempts == 1


def test_forbidden_transition_changes_nothing(store):
    exp = store.add_experiment("demo", {"t": 1}, {})
    with pytest.raises(TransitionError, match="cannot become analysed"):
        store.transition(exp.id, S.ANALYSED, furnace="furnace9")
    again = store.experiment(exp.id)
    assert again.state == S.QUEUED and again.furnace is None
    assert len(store.state_history(exp.id)) == 2


def test_experiment_numbers_count_up_per_campaign(store):
    store.create_campaign("other", config={}, lab={})
    numbers = [store.add_experiment("demo", {"i": i}, {}).number for i in range(3)]
    assert numbers == [1, 2, 3]
    assert store.add_experiment("other", {}, {}).number == 1


def test_rejected_proposal_is_kept_with_its_provenance(store):
    store.add_experiment(
        "demo", {"t": 5}, {"model": "gp", "acq": 0.3}, decision="rejected", state=S.ABANDONED
    )
    (proposal,) = store.proposals("demo")
    assert proposal.decision == "rejected" and proposal.provenance["acq"] == 0.3
    assert store.experiments("demo", [S.ABANDONED])


def test_duplicate_and_unknown_campaigns_are_clear_errors(store):
    with pytest.raises(StoreError, match="athanor resume demo"):
        store.create_campaign("demo", config={}, lab={})
    with pytest.raises(StoreError, match="known: demo"):
        store.campaign("nope")


def test_reanalysis_supersedes_outcomes(store):
    exp = store.add_experiment("demo", {}, {})
    store.record_outcomes(exp.id, [Outcome(experiment_id=0, name="gap", value=2.1, method="tauc")])
    store.record_outcomes(exp.id, [Outcome(experiment_id=0, name="gap", value=2.0, method="v2")])
    current = store.outcomes("demo")[exp.id]["gap"]
    assert current.value == 2.0 and current.method == "v2"


def test_samples_record_their_moves(store):
    exp = store.add_experiment("demo", {}, {})
    store.add_sample("S-1", "demo", exp.id)
    store.move_sample("S-1", "furnace2", lab_time=5)
    store.move_sample("S-1", "xrd:1", lab_time=9)
    assert store.sample("S-1").location == "xrd:1"
    assert [(m.source, m.target) for m in store.sample_moves("S-1")] == [
        ("rack", "furnace2"),
        ("furnace2", "xrd:1"),
    ]


def test_a_campaigns_moves_say_what_moved_each_sample_from_where_to_where(store):
    store.create_campaign("other", config={}, lab={})
    for campaign, sample in (("demo", "S-1"), ("other", "S-9"), ("demo", "S-2")):
        store.add_sample(sample, campaign, store.add_experiment(campaign, {}, {}).id)
        store.move_sample(sample, "furnace1", lab_time=60, by="robot")
    store.move_sample("S-1", "xrd", lab_time=7200, source="furnace1", by="robot")
    moves = [(m.sample_id, m.source, m.target, m.by, m.lab_time) for m in store.moves("demo")]
    assert moves == [
        ("S-1", "rack", "furnace1", "robot", 60),
        ("S-2", "rack", "furnace1", "robot", 60),
        ("S-1", "furnace1", "xrd", "robot", 7200),
    ]


def test_a_store_made_before_moves_named_their_robot_gains_the_column(tmp_path):
    path = tmp_path / "old.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE samplemove DROP COLUMN by")
    store = Store(path)
    store.create_campaign("c", config={}, lab={})
    store.add_sample("S-1", "c", None)
    store.move_sample("S-1", "furnace1")
    assert [m.by for m in store.moves("c")] == [""]


def full(store: Store) -> Store:
    """``store`` on a disk that is full but for a page or two (SQLite's own limit)."""
    with store.engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
    event.listen(
        store.engine, "connect",
        lambda dbapi, _: dbapi.execute(f"PRAGMA max_page_count = {pages + 2}"),
    )  # fmt: skip
    store.engine.dispose()  # every connection from now on has the limit
    return store


BIG = {"planner": {"observations": list(range(100_000))}}  # more than two pages


def test_a_campaign_is_created_whole_or_not_at_all_on_a_full_disk(tmp_path):
    store = full(Store(tmp_path / "lab.db"))
    with pytest.raises(StoreError, match="database or disk is full"):
        store.create_campaign("big", config={}, lab={}, planner_state=BIG)
    assert store.campaigns() == []


def test_a_write_the_full_disk_refuses_is_a_store_error_and_changes_nothing(store):
    full(store)
    with pytest.raises(StoreError, match=r"the database sqlite:///.*lab.db failed, nothing of"):
        store.update_campaign("demo", planner_state=BIG, status="running")
    assert store.campaign("demo").status == "created"


def test_a_creation_cut_short_gives_way_to_the_next_one(store):
    state = {"planner": {"observations": []}}
    store.create_campaign("cut", config={"v": 1}, lab={})  # no planner state: cut short
    assert store.creation_unfinished("cut")
    store.create_campaign("cut", config={"v": 2}, lab={}, planner_state=state)
    assert store.campaign("cut").config == {"v": 2} and not store.creation_unfinished("cut")
    with pytest.raises(StoreError, match="a campaign named 'cut' is already in"):
        store.create_campaign("cut", config={"v": 3}, lab={}, planner_state=state)


def test_bluesky_documents_are_stored_valid_and_replay_in_order(store):
    RE = RunEngine({}, context_managers=[])
    RE.subscribe(store.document_writer("demo"))
    (uid,) = RE(count([det], num=3), campaign="demo", experiment_id=7, sample_id="S-1")
    (run,) = store.runs("demo")
    assert run.uid == uid and run.exit_status == "success" and run.experiment_id == 7
    seen = []
    store.replay(uid, lambda name, doc: seen.append(name))
    assert seen == ["start", "descriptor", "event", "event", "event", "stop"]
    for name, doc in store.documents(uid):
        schema_validators[DocumentNames[name]].validate(doc)


def test_store_survives_reopening(tmp_path):
    path = tmp_path / "lab.db"
    first = Store(path)
    first.create_campaign("c", config={"a": 1}, lab={})
    first.add_experiment("c", {"x": 1.5}, {"model": "sobol"})
    first.close()
    again = Store(path)
    assert again.campaign("c").config == {"a": 1}
    assert again.experiments("c")[0].params == {"x": 1.5}
