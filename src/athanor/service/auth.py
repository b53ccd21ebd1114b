"""Who calls: bearer tokens, roles, and a limit on failed logins per client.

Every route but the health check depends on :func:`require`; a missing, unknown or
expired token (or one whose user was deleted) is a 401, a role below the one a route
needs a 403. A client whose tokens failed :data:`FAILED_LIMIT` times within
:data:`FAILED_WINDOW` seconds is answered 429 until the window has passed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from athanor.store.service import ROLES, ServiceRecords, expired

#: Failed logins a client may have within the window before it is refused.
FAILED_LIMIT = 10
#: Wall seconds the failed logins are counted over.
FAILED_WINDOW = 60.0

_bearer = HTTPBearer(auto_error=False, description="a token made by an admin")


@dataclass(frozen=True)
class Caller:
    """An authenticated caller."""

    user: str
    role: str


class FailedLogins:
    """Failed logins per client address, counted over a sliding window."""

    def __init__(self, limit: int = FAILED_LIMIT, window: float = FAILED_WINDOW) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: it may now)."""
        now = time.monotonic()
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) < self.limit:
                return 0.0
            return failures[0] + self.window - now

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(client, now).append(now)


def client_of(request: Request) -> str:
    """The caller's address (``host:port``)."""
    return f"{request.client.host}:{request.client.port}" if request.client else "unknown"


def _unauthorized(why: str) -> HTTPException:
    return HTTPException(401, why, headers={"WWW-Authenticate": "Bearer"})


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller of ``request`` by its bearer token; 401 or 429 if there is none."""
    limiter: FailedLogins = request.app.state.failed_logins
    host = request.client.host if request.client else "unknown"
    wait = limiter.retry_after(host)
    if wait > 0:
        raise HTTPException(
            429,
            f"too many failed logins from {host}; try again in {wait:.0f} s",
            headers={"Retry-After": str(int(wait) + 1)},
        )
    if credentials is None:
        raise _unauthorized(
            "no token: send 'Authorization: Bearer TOKEN' (the CLI reads ATHANOR_TOKEN)"
        )
    records: ServiceRecords = request.app.state.records
    found = records.holder(credentials.credentials)
    if found is None:
        limiter.failed(host)
        raise _unauthorized("unknown token (or its user was deleted)")
    user, token = found
    if expired(token):
        limiter.failed(host)
        raise _unauthorized(f"the token expired at {token.expires_at:%Y-%m-%d %H:%M} UTC")
    request.state.user = user.name
    return Caller(user.name, user.role)


def require(role: str) -> Callable[[Caller], Caller]:
    """A dependency: the caller, once authenticated with ``role`` or a higher one."""
    needed = ROLES.index(role)

    def check(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        if ROLES.index(caller.role) < needed:
            raise HTTPException(
                403, f"user {caller.user!r} is a {caller.role}; this needs a {role} or higher"
            )
        return caller

    return check
