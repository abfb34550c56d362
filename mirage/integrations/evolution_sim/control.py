"""The simulator's own `/sim/*` routes: scan a QR, disconnect, make a person write, emit any event, inspect.

These routes need no apikey: the simulator is a local test tool (bind it to loopback).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mirage.integrations.evolution_sim.bodies import BadBody, json_object, world_of
from mirage.integrations.evolution_sim.config import ChaosConfig
from mirage.integrations.evolution_sim.state import SimInstance, digits_of
from mirage.integrations.evolution_sim.world import SimRefusal

_world = world_of
_body = json_object
Handler = Callable[[Request], Awaitable[Response]]


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


def _control(handler: Handler) -> Handler:
    """A /sim route: a body that is not a JSON object answers 400 `{"error": ...}`, as on every route."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except BadBody as e:
            return _problem(400, e.message)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def _find(request: Request) -> SimInstance | None:
    return _world(request).instances.get(request.path_params["name"])


def _summary(inst: SimInstance) -> dict[str, Any]:
    return {
        "name": inst.name,
        "instanceId": inst.instance_id,
        "state": inst.state,
        "number": inst.number,
        "ownerJid": inst.owner_jid,
        "qrCount": inst.qr_count,
        "pairingCode": inst.pairing_code,
        "webhook": (
            {"url": inst.webhook.url, "events": inst.webhook.events, "byEvents": inst.webhook.by_events}
            if inst.webhook
            else None
        ),
    }


async def list_instances(request: Request) -> Response:
    return JSONResponse([_summary(i) for i in _world(request).instances.values()])


@_control
async def scan(request: Request) -> Response:
    """The phone scans the current QR: body `{"number": "+5511…"}` (optional) is the account that links."""
    inst = _find(request)
    if inst is None:
        return _problem(404, f"no instance {request.path_params['name']!r}")
    body = await _body(request)
    try:
        _world(request).scan(inst, body.get("number"))
    except SimRefusal as e:
        return _problem(e.status, str(e.message[0] if isinstance(e.message, list) else e.message))
    return JSONResponse({"instance": inst.name, "state": inst.state, "wuid": inst.owner_jid})


@_control
async def disconnect(request: Request) -> Response:
    """The phone drops the session (`{"statusReason": 401}` logged out, 403 banned): a permanent close."""
    inst = _find(request)
    if inst is None:
        return _problem(404, f"no instance {request.path_params['name']!r}")
    body = await _body(request)
    reason = body.get("statusReason", 401)
    if not isinstance(reason, int):
        return _problem(400, "statusReason must be an integer")
    _world(request).logout(inst, reason)
    return JSONResponse({"instance": inst.name, "state": inst.state})


@_control
async def emit(request: Request) -> Response:
    """Deliver `{"event": "messages.upsert", "data": {...}}` to the instance's webhook as Evolution would.

    `ignore_filter: true` sends it even if the instance is not subscribed; `wait: true` answers after the
    delivery finished, with its HTTP status.
    """
    inst = _find(request)
    if inst is None:
        return _problem(404, f"no instance {request.path_params['name']!r}")
    body = await _body(request)
    event = body.get("event")
    if not isinstance(event, str) or "data" not in body:
        return _problem(400, 'body must be {"event": "<dotted name>", "data": ...}')
    world = _world(request)
    deliveries = world.emit(inst, event, body["data"], ignore_filter=bool(body.get("ignore_filter")))
    if body.get("wait"):
        await world.webhooks.wait(deliveries, timeout=float(body.get("timeout", 30)))
    return JSONResponse({"deliveries": [d.as_dict() for d in deliveries]}, 202)


@_control
async def contact_says(request: Request) -> Response:
    """A simulated person writes: body `{"instance": "<name>", "text": "SAIR"}`."""
    world = _world(request)
    body = await _body(request)
    inst = world.instances.get(str(body.get("instance", "")))
    if inst is None:
        return _problem(404, "body.instance must name an existing instance")
    text = body.get("text")
    if not isinstance(text, str) or not text:
        return _problem(400, "body.text is required")
    number = request.path_params["number"]
    if inst.state != "open":
        return _problem(409, f"instance {inst.name!r} is {inst.state}")
    data = world.human_says(world.contact(number), inst, text)
    return JSONResponse({"key": data["key"]}, 201)


@_control
async def phone_send(request: Request) -> Response:
    """The instance's owner writes from the phone: body `{"number": "+55…", "text": "…"}` (upsert, fromMe)."""
    inst = _find(request)
    if inst is None:
        return _problem(404, f"no instance {request.path_params['name']!r}")
    body = await _body(request)
    number, text = body.get("number"), body.get("text")
    if not isinstance(number, str) or not isinstance(text, str) or not text:
        return _problem(400, "body.number and body.text are required")
    if inst.state != "open":
        return _problem(409, f"instance {inst.name!r} is {inst.state}")
    data = _world(request).phone_sends(inst, number, text)
    return JSONResponse({"key": data["key"]}, 201)


@_control
async def contact_script(request: Request) -> Response:
    """Script a person's next replies: body `{"replies": ["Oi!", "SAIR"]}` (then random ones)."""
    world = _world(request)
    body = await _body(request)
    replies = body.get("replies")
    if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
        return _problem(400, "body.replies must be a list of strings")
    digits = digits_of(request.path_params["number"])
    world.config.human.scripts[digits] = list(replies)
    contact = world.contact(digits)
    contact.script_pos, contact.opted_out = 0, False
    return JSONResponse({"number": digits, "replies": len(replies)})


async def deliveries(request: Request) -> Response:
    """Webhook deliveries so far, filtered by `?instance=` and `?event=`."""
    world = _world(request)
    inst, event = request.query_params.get("instance"), request.query_params.get("event")
    rows = [
        d.as_dict()
        for d in world.webhooks.deliveries
        if (inst is None or d.instance == inst) and (event is None or d.event == event)
    ]
    return JSONResponse(rows)


async def messages(request: Request) -> Response:
    """Messages sent through sendText, with their latest status."""
    rows = [
        {
            "id": m.id,
            "from": m.from_instance,
            "to": m.to_jid,
            "toInstance": m.to_instance,
            "text": m.text,
            "status": m.status,
            "timestamp": m.timestamp,
        }
        for m in _world(request).messages.values()
    ]
    return JSONResponse(rows)


@_control
async def chaos(request: Request) -> Response:
    """Change chaos at run time: any of duplicate_rate, reorder_rate, error_rate, timeout_rate, timeout_s,
    fail_next, hang_next."""
    cfg = _world(request).config.chaos
    body = await _body(request)
    for name, value in body.items():
        if (
            name not in ChaosConfig.__dataclass_fields__
            or isinstance(value, bool)
            or not isinstance(value, int | float)
        ):
            return _problem(400, f"unknown or non-numeric chaos option {name!r}")
        setattr(cfg, name, type(getattr(cfg, name))(value))
    return JSONResponse(asdict(cfg))


SIM_ROUTES = [
    Route("/sim/instances", list_instances, methods=["GET"]),
    Route("/sim/instances/{name}/scan", scan, methods=["POST"]),
    Route("/sim/instances/{name}/disconnect", disconnect, methods=["POST"]),
    Route("/sim/instances/{name}/emit", emit, methods=["POST"]),
    Route("/sim/instances/{name}/phone-send", phone_send, methods=["POST"]),
    Route("/sim/contacts/{number}/say", contact_says, methods=["POST"]),
    Route("/sim/contacts/{number}/script", contact_script, methods=["PUT"]),
    Route("/sim/deliveries", deliveries, methods=["GET"]),
    Route("/sim/messages", messages, methods=["GET"]),
    Route("/sim/chaos", chaos, methods=["POST"]),
]
