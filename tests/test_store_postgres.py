"""The store on PostgreSQL: the SQLite store's tests again, and what differs between the two.

Each test gets an empty database of its own on the session's server (conftest.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import SynSignal
from sqlalchemy import create_engine
from sqlalchemy.exc import DataError

# The SQLite store's tests, collected here again: they take the `store` fixture below.
from test_store import (  # noqa: F401
    test_a_campaigns_moves_say_what_moved_each_sample_from_where_to_where,
    test_a_creation_cut_short_gives_way_to_the_next_one,
    test_bluesky_documents_are_stored_valid_and_replay_in_order,
    test_duplicate_and_unknown_campaigns_are_clear_errors,
    test_experiment_moves_through_states_and_keeps_its_history,
    test_experiment_numbers_count_up_per_campaign,
    test_forbidden_transition_changes_nothing,
    test_reanalysis_supersedes_outcomes,
    test_rejected_proposal_is_kept_with_its_provenance,
    test_samples_record_their_moves,
)

from athanor.store import ExperimentState, Outcome, Store, StoreError

S = ExperimentState


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:
    store = Store(postgres_url)
    store.create_campaign("demo", config={"name": "demo"}, lab={"name": "sim"}, seed=3)
    yield store
    store.close()


def _count(store: Store, campaign: str, signal: SynSignal, num: int) -> str:
    """Run a count plan on a RunEngine of its own, storing its documents; its run uid."""
    RE = RunEngine({}, context_managers=[])
    RE.subscribe(store.document_writer(campaign))
    (uid,) = RE(count([signal], num=num), campaign=campaign)
    return str(uid)


def test_a_campaign_survives_reopening_for_writing_and_reading(postgres_url):
    first = Store(postgres_url)
    first.create_campaign("c", config={"a": 1}, lab={})
    exp = first.add_experiment("c", {"x": 1.5}, {"model": "sobol"})
    first.transition(exp.id, S.RUNNING, furnace="furnace1")
    first.finish_experiment(
        exp.id, S.FAILED, "sensor break",
        outcomes=[Outcome(experiment_id=0, name="x", value=1.0)],
        planner_state={"planner": {"seed": 1}, "ingested": [exp.id]},
    )  # fmt: skip
    first.close()
    for mode in ("write", "read"):
        again = Store(postgres_url, mode)
        assert again.campaign("c").planner_state == {"planner": {"seed": 1}, "ingested": [exp.id]}
        (stored,) = again.experiments("c", [S.FAILED])
        assert stored.params == {"x": 1.5} and stored.reason == "sensor break"
        assert again.outcomes("c")[exp.id]["x"].value == 1.0
        again.close()


def test_reading_a_database_without_a_store_is_a_store_error(postgres_url):
    with pytest.raises(StoreError, match=r"cannot use .* as an athanor database"):
        Store(postgres_url, "read")


def test_columns_added_since_a_database_was_made_are_added_to_it(postgres_url):
    old = Store(postgres_url)
    old.create_campaign("c", config={}, lab={})
    exp = old.add_experiment("c", {"x": 1}, {})
    old.record_outcomes(exp.id, [Outcome(experiment_id=0, name="gap", value=2.0)])
    old.close()
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        for table, column in [
            ("campaign", "lab_time"),
            ("experiment", "waiting"),
            ("outcome", "current"),
        ]:
            connection.exec_driver_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    engine.dispose()
    new = Store(postgres_url, "write")
    assert new.campaign("c").lab_time == 0.0
    assert new.experiment(exp.id).waiting == ""
    assert new.outcomes("c")[exp.id]["gap"].value == 2.0  # current again, by default
    new.close()


def test_experiments_in_flight_write_their_documents_at_once(store):
    """As a campaign's workers do: a RunEngine each, in threads, on one store."""
    signals = [SynSignal(func=lambda i=i: float(i), name=f"det{i}") for i in range(4)]
    with ThreadPoolExecutor(len(signals)) as pool:
        uids = list(pool.map(lambda s: _count(store, "demo", s, 10), signals))
    assert {run.uid for run in store.runs("demo")} == set(uids)
    for uid in uids:
        names = [name for name, _ in store.documents(uid)]
        assert names == ["start", "descriptor", *["event"] * 10, "stop"]


def test_experiments_added_at_once_get_numbers_of_their_own(store):
    def add(i: int) -> int:
        return store.add_experiment("demo", {"i": i}, {}).number

    with ThreadPoolExecutor(8) as pool:
        numbers = list(pool.map(add, range(40)))
    assert sorted(numbers) == list(range(1, 41))


def test_stores_opened_at_once_on_a_new_database_all_open(postgres_url):
    ready = threading.Barrier(6)

    def open_store(_: int) -> None:
        ready.wait()
        Store(postgres_url).close()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(open_store, range(6)))


@pytest.mark.xfail(
    raises=DataError,
    strict=True,
    reason="store: PostgreSQL's json type refuses NaN and Infinity, which SQLite stores",
)
def test_non_finite_numbers_are_stored(store):
    store.add_experiment("demo", {"t": 900.0}, {"acq": float("-inf"), "std": float("nan")})
    assert set(store.proposals("demo")[0].provenance) == {"acq", "std"}
    uid = _count(store, "demo", SynSignal(func=lambda: float("nan"), name="dark"), 2)
    assert [name for name, _ in store.documents(uid)][-1] == "stop"
