"""Mirage's own errors for Evolution API calls: 4xx and 200 `{"error": true}` are permanent, 5xx and timeouts not.

Messages carry the method, the path, the status and Evolution's own message, never the `apikey` header.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mirage.errors import PermanentError, TemporaryError

CORS_MESSAGE = "Not allowed by CORS"
CORS_HINT = (
    "Evolution answered 500 'Not allowed by CORS': its CORS_ORIGIN lists origins, so it refuses every request"
    " without an Origin header (as Mirage's server-to-server calls are); set CORS_ORIGIN=* on Evolution"
    " (docs/credentials/evolution.md)"
)


def evolution_message(body: Any) -> str:
    """Evolution's human message from an error body: `response.message` (often an array), `message`, or the body."""
    if isinstance(body, dict):
        response = body.get("response")
        msg = response.get("message") if isinstance(response, dict) else body.get("message")
        if msg is None:
            msg = body.get("error") if isinstance(body.get("error"), str) else None
        if msg is None:
            return ""
        if isinstance(msg, list):
            return "; ".join(_flatten(msg))
        return str(msg)
    if isinstance(body, str):
        return body[:300]
    return ""


def is_cors_refusal(status: int | None, body: Any) -> bool:
    """Evolution's answer to a request whose Origin its CORS_ORIGIN does not list: 500 "Not allowed by CORS"."""
    return status == 500 and evolution_message(body) == CORS_MESSAGE


def _flatten(items: list[Any]) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, list):
            out.extend(_flatten(item))
        elif isinstance(item, dict):
            out.append(", ".join(f"{k}={v}" for k, v in item.items()))
        else:
            out.append(str(item))
    return out


def _describe(method: str, path: str, status: int | None, message: str) -> str:
    head = f"Evolution {method} {path}"
    head += f" -> {status}" if status is not None else " -> no answer"
    return f"{head}: {message}" if message else head


class EvolutionClientError(PermanentError):
    """Evolution refused the request (4xx, or HTTP 200 with `{"error": true}`): retrying the same call cannot help."""

    def __init__(self, method: str, path: str, status: int, message: str, body: Any = None) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.evolution_message = message
        self.body = body
        super().__init__(_describe(method, path, status, message), {"status": status, "path": path})

    @property
    def is_not_found(self) -> bool:
        return self.status == 404

    @property
    def is_name_in_use(self) -> bool:
        return self.status == 403 and "already in use" in self.evolution_message

    @property
    def is_unauthorized(self) -> bool:
        return self.status == 401

    @property
    def not_on_whatsapp(self) -> list[str]:
        """Numbers sendText reported as not on WhatsApp (400 with `[{jid, exists: false, number}]`)."""
        if self.status != 400 or not isinstance(self.body, dict):
            return []
        response = self.body.get("response")
        items = response.get("message") if isinstance(response, dict) else None
        if not isinstance(items, list):
            return []
        return [str(i.get("number")) for i in items if isinstance(i, dict) and i.get("exists") is False]


class EvolutionCorsError(EvolutionClientError):
    """Evolution's CORS_ORIGIN refuses requests without an Origin: a 500 that retrying cannot fix."""

    def __init__(self, method: str, path: str, body: Any = None) -> None:
        super().__init__(method, path, 500, CORS_HINT, body)


class EvolutionRequestError(PermanentError):
    """A body Evolution would refuse (its request schemas, or a number it cannot use): not sent at all."""

    def __init__(self, method: str, path: str, problems: Sequence[str]) -> None:
        self.method = method
        self.path = path
        self.problems = list(problems)
        super().__init__(f"Evolution {method} {path} not sent: {'; '.join(self.problems)}", {"path": path})


class EvolutionServerError(TemporaryError):
    """Evolution failed (5xx), timed out or could not be reached: worth retrying later."""

    def __init__(self, method: str, path: str, status: int | None, message: str, *, delay: float | None = None) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.evolution_message = message
        super().__init__(_describe(method, path, status, message), delay, {"status": status, "path": path})
