"""The :class:`Store`: every state change is one transaction; documents stream in as they come."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import numpy as np
from sqlalchemy import event, inspect, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError, OperationalError
from sqlmodel import Session, SQLModel, col, create_engine, func, select

from athanor.store.models import (
    TRANSITIONS,
    Campaign,
    Document,
    Experiment,
    ExperimentState,
    Outcome,
    Proposal,
    Run,
    Sample,
    SampleMove,
    StateChange,
    utcnow,
)

RowT = TypeVar("RowT", bound=SQLModel)
#: How a command uses the store: may make a new database, writes an existing one, or
#: only reads an existing one (a database it may not write is opened read-only).
Mode = Literal["create", "write", "read"]


class StoreError(Exception):
    """A request the store cannot honour (unknown campaign, duplicate, bad state)."""


class TransitionError(StoreError):
    """An experiment state change that the state machine does not allow."""


def sqlite_path(db: str | Path) -> Path | None:
    """The SQLite file a ``--db`` names, or None for a URL."""
    return None if "://" in str(db) else Path(db).expanduser()


def database_url(db: str | Path) -> str:
    """A SQLAlchemy URL: URLs pass through, a plain path becomes a SQLite file."""
    text = str(db)
    if text.startswith("postgresql://"):  # SQLAlchemy's default would be psycopg2
        return "postgresql+psycopg://" + text.removeprefix("postgresql://")
    path = sqlite_path(text)
    return text if path is None else f"sqlite:///{path}"


def _sqlite_file(path: Path, db: str | Path, mode: Mode) -> tuple[str, bool]:
    """Check a SQLite file for ``mode`` (making its folder for ``create``); its URL and
    whether it is opened read-only."""
    if mode == "create":
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot make the folder {path.parent} for the database: {exc.strerror}"
            ) from None
    elif not path.is_file():
        raise StoreError(
            f"no database at {path}; 'athanor run CAMPAIGN.yaml --db {db}' creates one"
        )
    writable = os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))
    if mode != "read" and not writable:
        raise StoreError(
            f"cannot write the database {path}: this user may not write it or its folder "
            f"{path.parent} (SQLite keeps its journal there); running a campaign writes "
            "the store ('athanor status' and 'report' only read it)"
        )
    if mode == "read" and not writable:
        # Read it as it is; immutable when nobody has it open (no -shm), since a reader
        # that may not write cannot make the shared-memory file a WAL database needs.
        immutable = "" if Path(f"{path}-shm").exists() else "&immutable=1"
        return f"sqlite:///file:{quote(str(path))}?mode=ro{immutable}&uri=true", True
    return f"sqlite:///{path}", False


#: The databases athanor runs on.
_DIALECTS = ("sqlite", "postgresql")


def _url_engine(url: str, db: str | Path) -> Engine:
    """An engine for a database URL; StoreError when athanor cannot use that database."""
    try:
        dialect = make_url(url).get_backend_name()
    except ArgumentError:
        raise StoreError(
            f"--db {db!r} is neither a file path nor a database URL such as "
            "postgresql://user:password@host/athanor"
        ) from None
    if dialect not in _DIALECTS:
        raise StoreError(
            f"--db {db!r}: {dialect!r} databases are not supported; use a SQLite file path "
            "or postgresql://user:password@host/athanor"
        )
    try:
        return create_engine(url)
    except ImportError as exc:
        raise StoreError(
            f"--db {db!r} needs the database driver {exc.name!r}, which is not installed; "
            "install the extra: pip install -e '.[postgres]'"
        ) from None


def jsonable(value: Any) -> Any:
    """Documents as plain JSON: numpy arrays and scalars become lists and numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class Store:
    """The campaign database.

    Parameters
    ----------
    db
        A SQLAlchemy URL (``postgresql://user@host/athanor``) or a SQLite file path.
    mode
        ``create`` (the default) makes the file, its folder and the tables if missing;
        ``write`` and ``read`` want an existing database, and ``read`` opens one that
        may not be written read-only. StoreError, naming the database, if it cannot be
        used.
    """

    def __init__(self, db: str | Path = "athanor.db", mode: Mode = "create") -> None:
        self.url = database_url(db)
        path = sqlite_path(db)
        if path is None:
            self.engine: Engine = _url_engine(self.url, db)
        else:
            url, readonly = _sqlite_file(path, db, mode)
            self.engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            if not readonly:  # a read-only connection cannot set its journal mode
                event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            if mode == "read":
                with self.engine.connect() as connection:
                    connection.exec_driver_sql("SELECT count(*) FROM campaign")
            else:
                _create_tables(self.engine)
        except DatabaseError as exc:
            self.engine.dispose()
            raise StoreError(
                f"cannot use {path or self.url} as an athanor database: {exc.orig}"
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose changes all commit together, or none do; a database that
        fails (a full disk, a file made read-only, a lost server) is a StoreError."""
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                yield session
        except OperationalError as exc:
            raise StoreError(
                f"the database {self.url} failed, nothing of this change was written: {exc.orig}"
            ) from exc

    def close(self) -> None:
        self.engine.dispose()

    # ----------------------------------------------------------------- campaigns

    def create_campaign(
        self,
        name: str,
        config: dict[str, Any],
        lab: dict[str, Any],
        seed: int = 0,
        planner_state: dict[str, Any] | None = None,
    ) -> Campaign:
        """Record a new campaign, with its planner state, in one transaction.

        Refused when the name is taken, except by a campaign whose creation never
        finished (no planner state, nothing run), which a creation with a planner state
        replaces.
        """
        campaign = Campaign(
            name=name, config=config, lab=lab, seed=seed,
            planner_state=None if planner_state is None else jsonable(planner_state),
        )  # fmt: skip
        taken = StoreError(
            f"a campaign named {name!r} is already in {self.url}; "
            f"continue it with 'athanor resume {name}' or choose another name"
        )
        try:
            with self.transaction() as session:
                existing = session.get(Campaign, name)
                if existing is not None:
                    if planner_state is None or not _creation_unfinished(session, existing):
                        raise taken
                    session.delete(existing)
                    session.flush()
                session.add(campaign)
        except IntegrityError:  # another process created it at the same moment
            raise taken from None
        return campaign

    def creation_unfinished(self, name: str) -> bool:
        """Whether campaign ``name`` is a creation that never finished (see
        :meth:`create_campaign`)."""
        with self.transaction() as session:
            return _creation_unfinished(session, _get(session, Campaign, name))

    def campaign(self, name: str) -> Campaign:
        with self.transaction() as session:
            found = session.get(Campaign, name)
            if found is None:
                known = session.exec(select(Campaign.name)).all()
                raise StoreError(
                    f"no campaign named {name!r} in {self.url}; "
                    + (f"known: {', '.join(sorted(known))}" if known else "the store is empty")
                )
            return found

    def campaigns(self) -> list[Campaign]:
        with self.transaction() as session:
            return list(session.exec(select(Campaign).order_by(col(Campaign.created_at))).all())

    def update_campaign(self, name: str, **fields: Any) -> Campaign:
        """Set fields (status, planner_state, lab_time ...) of a campaign in one transaction."""
        with self.transaction() as session:
            campaign = _get(session, Campaign, name)
            _set(campaign, fields)
            session.add(campaign)
            return campaign

    # ----------------------------------------------------------------- experiments

    def add_experiment(
        self,
        campaign: str,
        params: dict[str, Any],
        provenance: dict[str, Any],
        *,
        decision: str = "accepted",
        state: ExperimentState = ExperimentState.QUEUED,
        lab_time: float | None = None,
    ) -> Experiment:
        """Record a proposal and, unless rejected, the experiment it becomes (one transaction)."""
        params, provenance = jsonable(params), jsonable(provenance)
        with self.transaction() as session:
            # Writers of one campaign take turns numbering (SQLite serialises them anyway).
            turn = select(Campaign.name).where(Campaign.name == campaign)
            session.exec(turn.with_for_update(key_share=True)).one_or_none()
            proposal = Proposal(
                campaign=campaign, params=params, provenance=provenance, decision=decision
            )
            session.add(proposal)
            session.flush()
            number = (
                session.exec(
                    select(func.max(Experiment.number)).where(Experiment.campaign == campaign)
                ).one()
                or 0
            ) + 1
            experiment = Experiment(
                campaign=campaign, number=number, params=params, proposal_id=proposal.id
            )
            session.add(experiment)
            session.flush()
            assert experiment.id is not None
            session.add(StateChange(experiment_id=experiment.id, source=None, target=S.PROPOSED))
            if state != S.PROPOSED:
                self._move(session, experiment, state, "", lab_time)
            return experiment

    def transition(
        self,
        experiment_id: int,
        target: ExperimentState,
        reason: str = "",
        lab_time: float | None = None,
        **fields: Any,
    ) -> Experiment:
        """Move an experiment to ``target`` (and set ``fields``) in one transaction."""
        with self.transaction() as session:
            experiment = _get(session, Experiment, experiment_id)
            _set(experiment, fields)
            self._move(session, experiment, target, reason, lab_time)
            return experiment

    def update_experiment(self, experiment_id: int, **fields: Any) -> Experiment:
        """Set fields (furnace, sample_id ...) without a state change."""
        with self.transaction() as session:
            experiment = _get(session, Experiment, experiment_id)
            _set(experiment, fields)
            session.add(experiment)
            return experiment

    def finish_experiment(
        self,
        experiment_id: int,
        target: ExperimentState,
        reason: str = "",
        *,
        outcomes: Sequence[Outcome] = (),
        planner_state: dict[str, Any] | None = None,
        lab_time: float | None = None,
    ) -> Experiment:
        """End an experiment in one transaction: its state, its outcomes, and the planner
        state that learnt from it, so a crash can never keep one without the others."""
        with self.transaction() as session:
            experiment = _get(session, Experiment, experiment_id)
            self._move(session, experiment, target, reason, lab_time)
            for outcome in outcomes:
                outcome.experiment_id = experiment_id
                outcome.method_params = jsonable(outcome.method_params)
                session.add(outcome)
            if planner_state is not None:
                campaign = session.get(Campaign, experiment.campaign)
                assert campaign is not None
                campaign.planner_state = jsonable(planner_state)
                campaign.updated_at = utcnow()
                session.add(campaign)
            return experiment

    @staticmethod
    def _move(
        session: Session,
        experiment: Experiment,
        target: ExperimentState,
        reason: str,
        lab_time: float | None,
    ) -> None:
        source = ExperimentState(experiment.state)
        if target not in TRANSITIONS[source]:
            allowed = ", ".join(sorted(TRANSITIONS[source])) or "nothing (it is final)"
            raise TransitionError(
                f"experiment {experiment.number} of {experiment.campaign!r} is {source}; "
                f"it cannot become {target} (allowed: {allowed})"
            )
        experiment.state = target
        experiment.updated_at = utcnow()
        if reason:
            experiment.reason = reason
        if target == S.RUNNING:
            experiment.attempts += 1
        session.add(experiment)
        assert experiment.id is not None
        session.add(
            StateChange(
                experiment_id=experiment.id,
                source=source,
                target=target,
                reason=reason,
                lab_time=lab_time,
            )
        )

    def experiment(self, experiment_id: int) -> Experiment:
        with self.transaction() as session:
            return _get(session, Experiment, experiment_id)

    def experiments(
        self, campaign: str, states: Sequence[ExperimentState] | None = None
    ) -> list[Experiment]:
        with self.transaction() as session:
            query = select(Experiment).where(Experiment.campaign == campaign)
            if states is not None:
                query = query.where(Experiment.state.in_(list(states)))  # type: ignore[attr-defined]
            return list(session.exec(query.order_by(col(Experiment.number))).all())

    def state_history(self, experiment_id: int) -> list[StateChange]:
        with self.transaction() as session:
            query = (
                select(StateChange)
                .where(StateChange.experiment_id == experiment_id)
                .order_by(col(StateChange.id))
            )
            return list(session.exec(query).all())

    def proposals(self, campaign: str) -> list[Proposal]:
        with self.transaction() as session:
            query = select(Proposal).where(Proposal.campaign == campaign).order_by(col(Proposal.id))
            return list(session.exec(query).all())

    # ----------------------------------------------------------------- samples

    def add_sample(
        self, sample_id: str, campaign: str, experiment_id: int | None, location: str = "rack"
    ) -> Sample:
        sample = Sample(
            id=sample_id, campaign=campaign, experiment_id=experiment_id, location=location
        )
        with self.transaction() as session:
            if session.get(Sample, sample_id) is not None:
                raise StoreError(f"a sample with id {sample_id!r} exists already")
            session.add(sample)
        return sample

    def move_sample(
        self,
        sample_id: str,
        target: str,
        lab_time: float | None = None,
        *,
        source: str | None = None,
        by: str = "",
    ) -> Sample:
        """Record that ``by`` moved a sample to ``target`` (from ``source``, or from where
        the store last had it)."""
        with self.transaction() as session:
            sample = _get(session, Sample, sample_id)
            session.add(
                SampleMove(
                    sample_id=sample_id,
                    source=sample.location if source is None else source,
                    target=target,
                    by=by,
                    lab_time=lab_time,
                )
            )
            sample.location, sample.updated_at = target, utcnow()
            session.add(sample)
            return sample

    def sample(self, sample_id: str) -> Sample:
        with self.transaction() as session:
            return _get(session, Sample, sample_id)

    def samples(self, experiment_id: int) -> list[Sample]:
        """The samples made for an experiment (one per attempt)."""
        with self.transaction() as session:
            query = select(Sample).where(Sample.experiment_id == experiment_id)
            return list(session.exec(query).all())

    def sample_moves(self, sample_id: str) -> list[SampleMove]:
        with self.transaction() as session:
            query = (
                select(SampleMove)
                .where(SampleMove.sample_id == sample_id)
                .order_by(col(SampleMove.id))
            )
            return list(session.exec(query).all())

    def moves(self, campaign: str) -> list[SampleMove]:
        """Every move of a campaign's samples, in the order they were made."""
        with self.transaction() as session:
            query = (
                select(SampleMove)
                .join(Sample, col(SampleMove.sample_id) == col(Sample.id))
                .where(Sample.campaign == campaign)
                .order_by(col(SampleMove.id))
            )
            return list(session.exec(query).all())

    # ----------------------------------------------------------------- outcomes

    def record_outcomes(self, experiment_id: int, outcomes: Sequence[Outcome]) -> None:
        """Store outcomes; earlier outcomes of the same names stop being current."""
        names = [o.name for o in outcomes]
        with self.transaction() as session:
            older = session.exec(
                select(Outcome).where(
                    Outcome.experiment_id == experiment_id,
                    col(Outcome.name).in_(names),
                    Outcome.current == True,  # noqa: E712 - SQL comparison
                )
            ).all()
            for old in older:
                old.current = False
                session.add(old)
            for outcome in outcomes:
                outcome.experiment_id = experiment_id
                outcome.method_params = jsonable(outcome.method_params)
                session.add(outcome)

    def outcomes(self, campaign: str) -> dict[int, dict[str, Outcome]]:
        """Current outcomes of a campaign's experiments: {experiment id: {name: outcome}}."""
        with self.transaction() as session:
            rows = session.exec(
                select(Outcome)
                .join(Experiment, col(Outcome.experiment_id) == col(Experiment.id))
                .where(Experiment.campaign == campaign, Outcome.current == True)  # noqa: E712
            ).all()
        table: dict[int, dict[str, Outcome]] = {}
        for row in rows:
            table.setdefault(row.experiment_id, {})[row.name] = row
        return table

    # ----------------------------------------------------------------- documents

    def document_writer(self, campaign: str | None = None) -> DocumentWriter:
        """A RunEngine subscriber that stores every document as it is emitted."""
        return DocumentWriter(self, campaign)

    def mark_run_interrupted(self, run_uid: str) -> None:
        """A run whose stop document never came (the process died) gets exit status
        ``interrupted``."""
        with self.transaction() as session:
            run = session.get(Run, run_uid)
            if run is not None and run.exit_status is None:
                run.exit_status, run.reason = "interrupted", "the campaign process ended mid-run"
                session.add(run)

    def runs(self, campaign: str | None = None, experiment_id: int | None = None) -> list[Run]:
        with self.transaction() as session:
            query = select(Run)
            if campaign is not None:
                query = query.where(Run.campaign == campaign)
            if experiment_id is not None:
                query = query.where(Run.experiment_id == experiment_id)
            return list(session.exec(query.order_by(col(Run.start_time))).all())

    def documents(self, run_uid: str) -> list[tuple[str, dict[str, Any]]]:
        """A run's documents in emission order, as (name, doc) pairs."""
        with self.transaction() as session:
            rows = session.exec(
                select(Document).where(Document.run_uid == run_uid).order_by(col(Document.seq))
            ).all()
        if not rows:
            raise StoreError(f"no documents for run {run_uid!r}")
        return [(row.name, row.body) for row in rows]

    def replay(self, run_uid: str, callback: Callable[[str, dict[str, Any]], Any]) -> None:
        """Send a stored run's documents, in order, to any Bluesky callback."""
        for name, doc in self.documents(run_uid):
            callback(name, doc)


S = ExperimentState


class DocumentWriter:
    """Stores each Bluesky document in its own transaction, in emission order.

    A run whose stop document never arrives (the process died) stays with
    ``exit_status`` None: the campaign's resume marks it interrupted.
    """

    def __init__(self, store: Store, campaign: str | None = None) -> None:
        self.store = store
        self.campaign = campaign
        self._run_of_descriptor: dict[str, str] = {}
        self._next_seq: dict[str, int] = {}

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        body = jsonable(doc)
        run_uid = self._run_uid(name, body)
        seq = self._next_seq.get(run_uid, 0)
        self._next_seq[run_uid] = seq + 1
        with self.store.transaction() as session:
            if name == "start":
                session.add(
                    Run(
                        uid=run_uid,
                        campaign=body.get("campaign", self.campaign),
                        experiment_id=body.get("experiment_id"),
                        sample_id=body.get("sample_id"),
                        plan_name=body.get("plan_name", ""),
                        start_time=body["time"],
                    )
                )
            session.add(Document(run_uid=run_uid, seq=seq, name=name, body=body))
            if name == "stop":
                run = session.get(Run, run_uid)
                if run is not None:
                    run.exit_status = body.get("exit_status")
                    run.reason = body.get("reason", "")
                    run.stop_time = body.get("time")
                    session.add(run)
        if name == "stop":
            self._next_seq.pop(run_uid, None)

    def _run_uid(self, name: str, body: dict[str, Any]) -> str:
        if name == "start":
            return str(body["uid"])
        if name == "descriptor":
            self._run_of_descriptor[body["uid"]] = body["run_start"]
        if "run_start" in body:
            return str(body["run_start"])
        descriptor = body.get("descriptor")
        if descriptor in self._run_of_descriptor:
            return self._run_of_descriptor[descriptor]
        raise StoreError(f"cannot tell which run a {name!r} document belongs to")


def _create_tables(engine: Engine, attempts: int = 5) -> None:
    """Make the tables and add new columns; another process (a campaign starting) may be
    doing the same at this moment, so a clash is tried again a few times."""
    for attempt in range(attempts):
        try:
            with engine.begin() as connection:
                if engine.dialect.name == "postgresql":  # one process at a time makes them
                    connection.execute(text("SELECT pg_advisory_xact_lock(7541321)"))
                SQLModel.metadata.create_all(connection)
            _add_new_columns(engine)
            return
        except OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _add_new_columns(engine: Engine) -> None:
    """Columns added to a table since a database was made, added to it (with defaults).

    Only additions: a store written by an earlier athanor gains the new fields and
    keeps everything it holds.
    """
    existing = inspect(engine)
    with engine.begin() as connection:
        for table in SQLModel.metadata.sorted_tables:
            present = {c["name"] for c in existing.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                kind = column.type.compile(dialect=engine.dialect)
                default = getattr(column.default, "arg", None)
                if not isinstance(default, str | int | float):
                    raise StoreError(f"cannot add column {table.name}.{column.name}: no default")
                literal = repr(default) if isinstance(default, str) else str(default)
                connection.exec_driver_sql(
                    f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind} '
                    f"NOT NULL DEFAULT {literal}"
                )


def _creation_unfinished(session: Session, campaign: Campaign) -> bool:
    """Whether a campaign's creation never finished: still ``created``, without a
    planner state, nothing proposed (a creation cut short before it was one transaction)."""
    if campaign.status != "created" or campaign.planner_state is not None:
        return False
    query = select(Proposal.id).where(Proposal.campaign == campaign.name)
    return session.exec(query).first() is None


def _get(session: Session, model: type[RowT], key: Any) -> RowT:
    """The row of ``model`` with primary key ``key``; StoreError names what is missing."""
    found = session.get(model, key)
    if found is None:
        raise StoreError(f"no {model.__name__.lower()} {key!r}")
    return found


def _set(row: Campaign | Experiment, fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        setattr(row, key, value)
    row.updated_at = utcnow()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
