"""Reading a simulator request, one way for the Evolution routes and the /sim routes: its world and its JSON body.

A body that is not JSON, or JSON that is neither an object nor an array, is refused with `BadBody` (a 400 on both
faces, each in its own envelope); an empty body reads as `{}`, as Express's JSON parser gives it.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from mirage.integrations.evolution_sim.world import SimWorld


class BadBody(Exception):
    """The body is not JSON, or is a bare string / number / literal (Express's parser runs in strict mode)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def world_of(request: Request) -> SimWorld:
    world: SimWorld = request.app.state.world
    return world


async def json_body(request: Request) -> dict[str, Any] | list[Any]:
    """The parsed body (an object or an array), `{}` when empty; parsed once per request, then reused."""
    cached = getattr(request.state, "json_body", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    raw = await request.body()
    body: dict[str, Any] | list[Any]
    if not raw.strip():
        body = {}
    else:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as e:
            raise BadBody(f"{e.msg} in JSON at position {e.pos}") from e
        except UnicodeDecodeError as e:
            raise BadBody(f"Unexpected byte in JSON at position {e.start}") from e
        if not isinstance(data, dict | list):
            first = raw.decode("utf-8", "replace").lstrip()[:1]
            raise BadBody(f"Unexpected token {first} in JSON at position 0")
        body = data
    request.state.json_body = body
    return body


async def json_object(request: Request) -> dict[str, Any]:
    """The body as an object; an array is refused like bad JSON (the /sim routes take objects only)."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadBody("the body must be a JSON object")
    return body
