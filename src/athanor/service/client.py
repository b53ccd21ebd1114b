"""The CLI's side of the lab service: calls with a token, failures said plainly."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode

#: Wall seconds a call may take (a submission makes the planner's first design).
TIMEOUT = 120.0
TOKEN_ENV = "ATHANOR_TOKEN"


class ClientError(Exception):
    """A call to the lab service that did not succeed; the message says why."""


class ServiceClient:
    """Calls the REST API of the lab service at ``server`` with ``token``."""

    def __init__(self, server: str, token: str | None) -> None:
        self.server, self.token = server.rstrip("/"), token

    def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str = "application/json",
        query: dict[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON answer; ClientError explaining a failure."""
        url = self.server + path + (f"?{urlencode(query)}" if query else "")
        request = urllib.request.Request(url, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                text = answer.read()
        except urllib.error.HTTPError as exc:
            raise ClientError(self._explain(exc.code, _detail(exc.read()))) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(
                f"cannot reach the lab service at {self.server} ({reason}); is "
                "'athanor serve' running there, and is --server right?"
            ) from None
        return json.loads(text) if text else None

    def _explain(self, status: int, detail: str) -> str:
        if status == 401:
            how = "pass --token" if self.token else f"set {TOKEN_ENV} or pass --token"
            return f"the lab service did not accept the token: {detail}; {how}"
        if status == 403:
            return f"not allowed: {detail}; ask an admin for a token with that role"
        if status == 422:
            return f"refused, nothing was stored: {detail}"
        return f"the lab service answered {status}: {detail}"

    def campaign_path(self, name: str, *more: str) -> str:
        return "/".join(["/campaigns", quote(name, safe=""), *more])


def _detail(body: bytes) -> str:
    """The ``detail`` of an error answer, or its text."""
    try:
        detail = json.loads(body)["detail"]
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace").strip() or "(no detail)"
    return detail if isinstance(detail, str) else json.dumps(detail)
