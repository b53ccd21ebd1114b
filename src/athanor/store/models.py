"""Tables of the store (SQLModel)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class ExperimentState(StrEnum):
    PROPOSED = "proposed"
    QUEUED = "queued"
    RUNNING = "running"
    MEASURING = "measuring"
    ANALYSED = "analysed"
    FAILED = "failed"
    ABANDONED = "abandoned"

    @property
    def terminal(self) -> bool:
        return self in (ExperimentState.ANALYSED, ExperimentState.FAILED, ExperimentState.ABANDONED)

    @property
    def active(self) -> bool:
        """In a furnace or on an instrument: pending from the planner's point of view."""
        return self in (ExperimentState.QUEUED, ExperimentState.RUNNING, ExperimentState.MEASURING)


S = ExperimentState
#: Which state may follow which. Interrupted work goes back to QUEUED or to ABANDONED.
TRANSITIONS: dict[ExperimentState, frozenset[ExperimentState]] = {
    S.PROPOSED: frozenset({S.QUEUED, S.ABANDONED}),
    S.QUEUED: frozenset({S.RUNNING, S.FAILED, S.ABANDONED}),
    S.RUNNING: frozenset({S.MEASURING, S.FAILED, S.ABANDONED, S.QUEUED}),
    S.MEASURING: frozenset({S.ANALYSED, S.FAILED, S.ABANDONED, S.QUEUED}),
    S.ANALYSED: frozenset(),
    S.FAILED: frozenset(),
    S.ABANDONED: frozenset(),
}


class Campaign(SQLModel, table=True):
    name: str = Field(primary_key=True)
    # created, running, paused, stopping, stopped, finished, aborted, crashed
    status: str = "created"
    config: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    lab: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    seed: int = 0
    planner_state: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    lab_time: float = 0.0  # lab seconds the campaign has run, over all its sessions
    waiting: str = ""  # what the campaign itself waits for (the planner, an answer)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Proposal(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(foreign_key="campaign.name", index=True)
    params: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    provenance: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    decision: str = "accepted"  # accepted, edited, rejected
    created_at: datetime = Field(default_factory=utcnow)


class Experiment(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("campaign", "number"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(foreign_key="campaign.name", index=True)
    number: int  # 1, 2, ... within the campaign
    params: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    state: ExperimentState = ExperimentState.PROPOSED
    proposal_id: int | None = Field(default=None, foreign_key="proposal.id")
    furnace: str | None = None
    sample_id: str | None = None
    attempts: int = 0
    reason: str = ""
    waiting: str = ""  # why it is not running while it waits (the scheduler's word)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class StateChange(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    source: ExperimentState | None
    target: ExperimentState
    reason: str = ""
    lab_time: float | None = None
    at: datetime = Field(default_factory=utcnow)


class Sample(SQLModel, table=True):
    id: str = Field(primary_key=True)
    campaign: str = Field(foreign_key="campaign.name", index=True)
    experiment_id: int | None = Field(default=None, foreign_key="experiment.id")
    location: str = "rack"
    updated_at: datetime = Field(default_factory=utcnow)


class SampleMove(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    sample_id: str = Field(foreign_key="sample.id", index=True)
    source: str
    target: str
    by: str = ""  # the transfer instrument that moved it
    lab_time: float | None = None
    at: datetime = Field(default_factory=utcnow)


class Run(SQLModel, table=True):
    uid: str = Field(primary_key=True)
    campaign: str | None = Field(default=None, index=True)
    experiment_id: int | None = Field(default=None, index=True)
    sample_id: str | None = None
    plan_name: str = ""
    exit_status: str | None = None  # success, fail, abort; None while running
    reason: str = ""
    start_time: float
    stop_time: float | None = None


class Document(SQLModel, table=True):
    __table_args__ = (Index("ix_document_run_seq", "run_uid", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    run_uid: str = Field(index=False)
    seq: int
    name: str  # start, descriptor, event, stop, resource, datum ...
    body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class Outcome(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiment.id", index=True)
    name: str
    value: float | None
    uncertainty: float | None = None
    unit: str = ""
    method: str = ""
    method_params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    run_uid: str | None = None
    current: bool = True  # False once a re-analysis supersedes it
    at: datetime = Field(default_factory=utcnow)


# --------------------------------------------------------------------- the lab service


class ServedCampaign(SQLModel, table=True):
    """A campaign the lab service runs: its priority and the operators' last word."""

    name: str = Field(primary_key=True, foreign_key="campaign.name")
    priority: int = 0  # added to its experiments' requests for shared instruments
    wanted: str = "running"  # running, paused, stopped, aborted: what a restart resumes
    submitted_by: str = ""
    submitted_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    """Someone the lab service knows, with a role: viewer, operator or admin."""

    name: str = Field(primary_key=True)
    role: str
    created_at: datetime = Field(default_factory=utcnow)


class ApiToken(SQLModel, table=True):
    """A user's token, kept only as its SHA-256 digest (the token is shown once)."""

    id: int | None = Field(default=None, primary_key=True)
    user: str = Field(foreign_key="user.name", index=True)
    digest: str = Field(unique=True)
    label: str = ""
    expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class AuditEntry(SQLModel, table=True):
    """One state-changing call to the lab service: who, what, when, from where, result."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    user: str  # "" when the caller was not authenticated
    action: str  # METHOD /path
    client: str  # the caller's address
    status: int  # the HTTP status answered
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
