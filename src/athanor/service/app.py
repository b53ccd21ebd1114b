"""The lab service's ASGI app: routes, authentication, the audit log, clear errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from athanor import __version__
from athanor.config_files import ConfigError, shorten
from athanor.service.auth import FailedLogins
from athanor.service.control import CommandError
from athanor.service.manager import CampaignManager, UnknownCampaign
from athanor.service.middleware import Audit, BodyLimit
from athanor.service.routes import router
from athanor.store import StoreError

#: Exceptions of ours and the status each is answered with (the first that fits).
STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (ConfigError, 422),
    (UnknownCampaign, 404),
    (CommandError, 409),
    (StoreError, 409),
)


def create_app(manager: CampaignManager) -> FastAPI:
    """The REST API over ``manager``'s campaigns, with its store's users and audit log."""
    app = FastAPI(
        title="athanor lab service",
        version=__version__,
        description="Campaigns on one lab: submit, watch, pause, resume, stop. Every call "
        "but /health needs a bearer token.",
    )
    app.state.manager = manager
    app.state.records = manager.records
    app.state.failed_logins = FailedLogins()
    app.include_router(router)
    app.add_middleware(BodyLimit)
    app.add_middleware(Audit, records=manager.records)  # outermost: refusals are audited too

    for kind, status in STATUS_OF:
        app.add_exception_handler(kind, _answer_with(status))
    app.add_exception_handler(RequestValidationError, _invalid_request)
    return app


def _answer_with(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def answer(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status)

    return answer


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field, its value and what is allowed, in one message."""
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        where = ".".join(str(k) for k in err["loc"])
        value = f"{shorten(err['input'])} is not allowed: " if "input" in err else ""
        problems.append(f"{where}: {value}{err['msg']}")
    return JSONResponse({"detail": "; ".join(problems)}, status_code=422)
