"""ASGI middleware of the lab service: a limit on request bodies, and the audit log."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from athanor.store.service import ServiceRecords

#: Methods whose calls change state, and so are audited.
CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The largest request body taken, in bytes (a campaign YAML is a few kilobytes).
MAX_BODY = 256 * 1024


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse (413) a request whose body is over ``limit`` bytes, whether it says so in
    its Content-Length or not; the body is read before the route sees it."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = f"the request body is over the limit of {self.limit} bytes"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _refuse(send, 413, too_big)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await _refuse(send, 413, too_big)
                return
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class Audit:
    """Write every state-changing call to the audit table as it is answered, before the
    caller has the answer: who (as authenticated, "" if not), what, from where, and the
    status answered. A route may add ``request.state.audit`` (a dict) as its detail."""

    def __init__(self, app: ASGIApp, records: ServiceRecords) -> None:
        self.app, self.records = app, records

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in CHANGING:
            await self.app(scope, receive, send)
            return
        written = False

        async def write(status: int) -> None:
            nonlocal written
            written = True
            state: dict[str, Any] = scope.get("state", {})
            client = scope.get("client")
            await run_in_threadpool(
                self.records.audit,
                state.get("user", ""),
                f"{scope['method']} {scope['path']}",
                f"{client[0]}:{client[1]}" if client else "unknown",
                status,
                state.get("audit", {}),
            )

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and not written:
                await write(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if not written:  # it failed before answering: the server answers 500
                await write(500)
