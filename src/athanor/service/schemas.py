"""What the lab service's REST API takes and answers (its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Role = Literal["viewer", "operator", "admin"]  # athanor.store.service.ROLES
#: The priorities a campaign may have (higher first).
PRIORITY_RANGE = (-1000, 1000)


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    lab: str
    campaigns_running: int


class Me(BaseModel):
    user: str
    role: Role


class CampaignView(BaseModel):
    """A campaign the service runs, and where it stands."""

    name: str
    status: str = Field(description="as stored: running, paused, stopped, finished, ...")
    wanted: str = Field(description="the operators' last word: running, paused, stopped, aborted")
    priority: int
    running: bool = Field(description="whether the service is running it now")
    waiting: str = Field(description="what the campaign itself waits for")
    counts: dict[str, int] = Field(description="experiments by state")
    max_experiments: int
    lab_hours: float
    submitted_by: str
    submitted_at: datetime
    notes: list[str] = Field(default_factory=list, description="its latest notes for the operator")


class Submitted(BaseModel):
    campaign: CampaignView
    notes: list[str] = Field(description="what the start did (warm start)")


class PriorityChange(BaseModel):
    priority: int = Field(ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])


class ExperimentView(BaseModel):
    number: int
    state: str
    params: dict[str, Any]
    furnace: str | None
    sample_id: str | None
    attempts: int
    reason: str
    waiting: str
    outcomes: dict[str, float | None]


class InstrumentView(BaseModel):
    name: str
    kind: str
    model: str
    connection: str
    holder: str | None = Field(description="who leases it now (campaign#experiment)")
    out_of_service: str = Field(description="why it is out of service, or empty")
    readings: dict[str, Any]


class NewUser(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$", max_length=64)
    role: Role
    token_label: str = Field("", max_length=200)


class NewToken(BaseModel):
    label: str = Field("", max_length=200)
    expires_in_hours: float | None = Field(None, gt=0, le=24 * 3650)


class UserView(BaseModel):
    name: str
    role: Role
    created_at: datetime


class TokenCreated(BaseModel):
    """A new token: shown only in this answer; the service keeps its digest."""

    user: str
    role: Role
    token: str
    expires_at: datetime | None


class AuditView(BaseModel):
    at: datetime
    user: str
    action: str
    client: str
    status: int
    detail: dict[str, Any]
