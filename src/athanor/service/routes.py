"""The REST API's routes: health, campaigns, experiments, instruments, users, audit.

Reading needs a ``viewer`` token, changing a campaign an ``operator``'s, users and the
audit log an ``admin``'s (:mod:`athanor.service.auth`). Route functions that do blocking
work (the store, the lab) are plain ``def``: FastAPI runs them in its thread pool.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from athanor.service.auth import Caller, require
from athanor.service.manager import CampaignManager
from athanor.service.schemas import (
    PRIORITY_RANGE,
    AuditView,
    CampaignView,
    ExperimentView,
    Health,
    InstrumentView,
    Me,
    NewToken,
    NewUser,
    PriorityChange,
    Submitted,
    TokenCreated,
    UserView,
)
from athanor.store.models import utcnow
from athanor.store.service import ServiceRecords

router = APIRouter()
Viewer = Annotated[Caller, Depends(require("viewer"))]
Operator = Annotated[Caller, Depends(require("operator"))]
Admin = Annotated[Caller, Depends(require("admin"))]
Command = Literal["pause", "resume", "stop", "abort"]
YAML_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/yaml": {"schema": {"type": "string"}}},
        "description": "the campaign YAML, as 'athanor run' reads it (its lab key is "
        "ignored: it runs on the service's lab)",
    }
}


def _manager(request: Request) -> CampaignManager:
    manager: CampaignManager = request.app.state.manager
    return manager


def _records(request: Request) -> ServiceRecords:
    records: ServiceRecords = request.app.state.records
    return records


Manager = Annotated[CampaignManager, Depends(_manager)]
Records = Annotated[ServiceRecords, Depends(_records)]


@router.get("/health", response_model=Health, tags=["service"])
def health(manager: Manager) -> Health:
    """Whether the service is up (no token needed)."""
    return Health(lab=manager.lab.config.name, campaigns_running=manager.running_count)


@router.get("/me", response_model=Me, tags=["service"])
def me(caller: Viewer) -> Me:
    """Who the token belongs to, and its role."""
    return Me(user=caller.user, role=caller.role)


# ---------------------------------------------------------------------- campaigns


@router.get("/campaigns", response_model=list[CampaignView], tags=["campaigns"])
def list_campaigns(manager: Manager, _: Viewer) -> list[CampaignView]:
    """Every campaign the service runs or ran, oldest first."""
    return manager.campaigns()


@router.post(
    "/campaigns", response_model=Submitted, status_code=201, tags=["campaigns"],
    openapi_extra=YAML_BODY,
)  # fmt: skip
async def submit_campaign(
    request: Request,
    manager: Manager,
    caller: Operator,
    priority: Annotated[int, Query(ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])] = 0,
    source: Annotated[str, Query(max_length=200, description="file name for errors")] = (
        "campaign.yaml"
    ),
) -> Submitted:
    """Start a campaign from its YAML; 422 with the errors located in the file when it
    is not valid on this lab (nothing is stored then), 409 when its name is taken."""
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(422, f"{source}: the body is not UTF-8 text ({exc})") from None
    request.state.audit = {"priority": priority, "source": source}
    name, notes = await run_in_threadpool(manager.submit, text, source, caller.user, priority)
    request.state.audit["campaign"] = name
    return Submitted(campaign=await run_in_threadpool(manager.campaign, name), notes=notes)


@router.get("/campaigns/{name}", response_model=CampaignView, tags=["campaigns"])
def show_campaign(name: str, manager: Manager, _: Viewer) -> CampaignView:
    return manager.campaign(name)


@router.post("/campaigns/{name}/{command}", response_model=CampaignView, tags=["campaigns"])
def command_campaign(name: str, command: Command, manager: Manager, _: Operator) -> CampaignView:
    """Pause, resume, stop or abort a campaign; 409 when it cannot take that now.

    Pausing a paused campaign or resuming a running one changes nothing; resuming a
    stopped or crashed campaign picks it up as ``athanor resume`` does.
    """
    manager.command(name, command)
    return manager.campaign(name)


@router.put("/campaigns/{name}/priority", response_model=CampaignView, tags=["campaigns"])
def set_priority(
    name: str, change: PriorityChange, request: Request, manager: Manager, _: Operator
) -> CampaignView:
    """Change a campaign's priority for shared instruments, at once."""
    request.state.audit = {"priority": change.priority}
    manager.set_priority(name, change.priority)
    return manager.campaign(name)


@router.get(
    "/campaigns/{name}/experiments", response_model=list[ExperimentView], tags=["campaigns"]
)
def list_experiments(name: str, manager: Manager, _: Viewer) -> list[ExperimentView]:
    return manager.experiments(name)


# ---------------------------------------------------------------------- the lab


@router.get("/instruments", response_model=list[InstrumentView], tags=["lab"])
def list_instruments(manager: Manager, _: Viewer) -> list[InstrumentView]:
    """Every instrument of the lab: who holds it, whether it is in service, readings."""
    return manager.instruments()


# ---------------------------------------------------------------------- users


@router.get("/users", response_model=list[UserView], tags=["users"])
def list_users(records: Records, _: Admin) -> list[UserView]:
    return [UserView.model_validate(u, from_attributes=True) for u in records.users()]


@router.post("/users", response_model=TokenCreated, status_code=201, tags=["users"])
def add_user(new: NewUser, request: Request, records: Records, _: Admin) -> TokenCreated:
    """Add a user and make their first token (shown only in this answer)."""
    request.state.audit = {"name": new.name, "role": new.role}
    records.add_user(new.name, new.role)
    token, _record = records.new_token(new.name, new.token_label)
    return TokenCreated(user=new.name, role=new.role, token=token, expires_at=None)


@router.delete("/users/{name}", status_code=204, tags=["users"])
def delete_user(name: str, records: Records, caller: Admin) -> None:
    """Remove a user; their tokens stop working at once."""
    if name == caller.user:
        raise HTTPException(409, "an admin cannot delete themselves; ask another admin")
    records.delete_user(name)


@router.post("/users/{name}/tokens", response_model=TokenCreated, status_code=201, tags=["users"])
def new_token(
    name: str, new: NewToken, request: Request, records: Records, _: Admin
) -> TokenCreated:
    """Make another token for a user (shown only in this answer)."""
    request.state.audit = {"label": new.label, "expires_in_hours": new.expires_in_hours}
    expires = (
        None if new.expires_in_hours is None else utcnow() + timedelta(hours=new.expires_in_hours)
    )
    role = next((u.role for u in records.users() if u.name == name), None)
    if role is None:
        raise HTTPException(404, f"no user named {name!r}")
    token, _record = records.new_token(name, new.label, expires)
    return TokenCreated(user=name, role=role, token=token, expires_at=expires)


@router.get("/audit", response_model=list[AuditView], tags=["users"])
def audit_log(
    records: Records, _: Admin, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
) -> list[AuditView]:
    """Every state-changing call, newest first."""
    return [AuditView.model_validate(a, from_attributes=True) for a in records.audit_log(limit)]
