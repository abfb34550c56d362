"""The simulator's HTTP face: Evolution 2.3.6 routes with their real bodies, guards and error envelopes, plus /sim.

Guard order is Evolution's: unknown instance -> 404 before any auth check; `/instance/create` with a taken name
-> 403 before auth; then the `apikey` header (the global key everywhere, an instance token on its own routes).
Errors look like `{"status": 400, "error": "Bad Request", "response": {"message": [...]}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mirage.integrations.evolution_sim.config import SimConfig
from mirage.integrations.evolution_sim.control import SIM_ROUTES
from mirage.integrations.evolution_sim.state import ALL_EVENTS, INTEGRATIONS, SimInstance
from mirage.integrations.evolution_sim.world import SimRefusal, SimWorld

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
}
_PRESENCES = ("unavailable", "available", "composing", "recording", "paused")
Handler = Callable[[Request], Awaitable[Response]]


def error(status: int, message: Any) -> JSONResponse:
    return JSONResponse(
        {"status": status, "error": _REASONS.get(status, "Error"), "response": {"message": message}}, status
    )


def invalid(*problems: str) -> SimRefusal:
    """A JSON-schema validation failure: Evolution nests the messages one level deeper."""
    return SimRefusal(400, [list(problems)])


def _world(request: Request) -> SimWorld:
    world: SimWorld = request.app.state.world
    return world


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise SimRefusal(400, [f"Unexpected token in JSON: {type(e).__name__}"]) from e
    if not isinstance(data, dict):
        raise invalid("instance is not of a type(s) object")
    return data


def _instance(request: Request) -> SimInstance:
    """instanceExistsGuard then authGuard: 404 for an unknown name first, then the apikey check."""
    world = _world(request)
    name = request.path_params["instance"]
    inst = world.instances.get(name)
    if inst is None:
        raise SimRefusal(404, [f'The "{name}" instance does not exist'])
    key = request.headers.get("apikey")
    if key is None or key not in (world.config.api_key, inst.token):
        raise SimRefusal(401, "Unauthorized")
    return inst


def _require_global(request: Request) -> None:
    if request.headers.get("apikey") != _world(request).config.api_key:
        raise SimRefusal(401, "Unauthorized")


def _required(body: dict[str, Any], *names: str) -> None:
    missing = [f'instance requires property "{n}"' for n in names if n not in body]
    if missing:
        raise invalid(*missing)


def evolution(handler: Handler) -> Handler:
    """An Evolution route: chaos (when on) first, SimRefusal -> Evolution's error envelope."""

    async def wrapped(request: Request) -> Response:
        world = _world(request)
        world.calls.append((request.method, request.url.path))
        chaos = world.config.chaos
        if chaos.fail_next > 0 or (chaos.error_rate and world.rng.random() < chaos.error_rate):
            chaos.fail_next = max(0, chaos.fail_next - 1)
            return error(500, ["chaos: simulated internal error"])
        if chaos.hang_next > 0 or (chaos.timeout_rate and world.rng.random() < chaos.timeout_rate):
            chaos.hang_next = max(0, chaos.hang_next - 1)
            await asyncio.sleep(chaos.timeout_s)
        try:
            return await handler(request)
        except SimRefusal as e:
            return error(e.status, e.message)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


# -- instance ---------------------------------------------------------------------------------------------------


@evolution
async def create_instance(request: Request) -> Response:
    world = _world(request)
    body = await _body(request)
    name = body.get("instanceName")
    if isinstance(name, str) and name in world.instances:  # instanceLoggedGuard runs before auth
        raise SimRefusal(403, [f'This name "{name}" is already in use.'])
    _require_global(request)
    _required(body, "instanceName")
    if not isinstance(name, str) or not name.strip():
        raise invalid("instanceName does not meet minimum length of 1")
    integration = body.get("integration")
    if integration not in INTEGRATIONS:
        raise SimRefusal(400, ["Invalid integration"])
    webhook = body.get("webhook")
    if webhook is not None and (not isinstance(webhook, dict) or not isinstance(webhook.get("events"), list)):
        # WebhookController.set reads events.length: a TypeError, and the half-made instance is deleted
        raise SimRefusal(400, ["Cannot read properties of undefined (reading 'length')"])
    token = body.get("token")
    settings = {
        "rejectCall": bool(body.get("rejectCall", False)),
        "msgCall": str(body.get("msgCall", "")),
        "groupsIgnore": bool(body.get("groupsIgnore", False)),
        "alwaysOnline": bool(body.get("alwaysOnline", False)),
        "readMessages": bool(body.get("readMessages", False)),
        "readStatus": bool(body.get("readStatus", False)),
        "syncFullHistory": bool(body.get("syncFullHistory", False)),
    }
    qrcode = bool(body.get("qrcode", False))
    inst = world.create(
        name,
        token=str(token) if token else None,
        integration=str(integration),
        settings=settings,
        webhook=webhook,
        number=str(body["number"]) if body.get("number") else None,
        qrcode=qrcode,
    )
    hook = inst.webhook
    out: dict[str, Any] = {
        "instance": {
            "instanceName": inst.name,
            "instanceId": inst.instance_id,
            "integration": inst.integration,
            "webhookWaBusiness": None,
            "accessTokenWaBusiness": "",
            "status": inst.state,
        },
        "hash": inst.token,
        "webhook": (
            {
                "webhookUrl": hook.url,
                "webhookHeaders": dict(hook.headers),
                "webhookByEvents": hook.by_events,
                "webhookBase64": hook.base64,
            }
            if hook
            else {}
        ),
        "websocket": {},
        "rabbitmq": {},
        "nats": {},
        "sqs": {},
        "settings": {**settings, "wavoipToken": ""},
    }
    if qrcode and inst.integration == "WHATSAPP-BAILEYS":
        await _wait_for_qr(world, inst, world.config.scaled(5.0))
        out["qrcode"] = inst.qr_object()
    return JSONResponse(out, 201)


async def _wait_for_qr(world: SimWorld, inst: SimInstance, limit: float) -> None:
    """create waits 5 s and connect 2 s for Baileys to produce a QR (scaled by time_factor here)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while inst.state == "connecting" and not inst.qr_code and loop.time() < deadline:
        await asyncio.sleep(0.01)


@evolution
async def connect(request: Request) -> Response:
    world = _world(request)
    inst = _instance(request)
    number = request.query_params.get("number")
    if inst.state in ("open", "refused"):
        return JSONResponse({"instance": {"instanceName": inst.name, "state": inst.state}})
    if inst.state == "close":
        world.start_connecting(inst, number)
        await _wait_for_qr(world, inst, world.config.scaled(2.0))
    elif number and not inst.number:
        inst.number = "".join(ch for ch in number if ch.isdigit())
    return JSONResponse(inst.qr_object())


@evolution
async def connection_state(request: Request) -> Response:
    inst = _instance(request)
    return JSONResponse({"instance": {"instanceName": inst.name, "state": inst.state}})


@evolution
async def restart(request: Request) -> Response:
    inst = _instance(request)
    return JSONResponse(_world(request).restart(inst))


@evolution
async def logout(request: Request) -> Response:
    inst = _instance(request)
    if inst.state in ("close", "refused"):
        raise SimRefusal(400, [f'The "{inst.name}" instance is not connected'])
    _world(request).logout(inst)
    return JSONResponse({"status": "SUCCESS", "error": False, "response": {"message": "Instance logged out"}})


@evolution
async def delete_instance(request: Request) -> Response:
    inst = _instance(request)
    _world(request).delete(inst)
    return JSONResponse({"status": "SUCCESS", "error": False, "response": {"message": "Instance deleted"}})


@evolution
async def fetch_instances(request: Request) -> Response:
    world = _world(request)
    name = request.query_params.get("instanceName")
    if name and name not in world.instances:
        raise SimRefusal(404, [f'The "{name}" instance does not exist'])
    key = request.headers.get("apikey")
    rows = list(world.instances.values())
    if key != world.config.api_key:
        rows = [i for i in rows if key is not None and i.token == key]
        if not rows:
            raise SimRefusal(401, "Unauthorized")
    if name:
        rows = [i for i in rows if i.name == name]
    if iid := request.query_params.get("instanceId"):
        rows = [i for i in rows if i.instance_id == iid]
    return JSONResponse([i.row() for i in rows])


@evolution
async def set_presence(request: Request) -> Response:
    _instance(request)
    body = await _body(request)
    _required(body, "presence")
    if body["presence"] not in _PRESENCES:
        raise invalid(f"instance.presence is not one of enum values: {','.join(_PRESENCES)}")
    return JSONResponse({"presence": body["presence"]}, 201)


# -- webhook ----------------------------------------------------------------------------------------------------


@evolution
async def set_webhook(request: Request) -> Response:
    world = _world(request)
    inst = _instance(request)
    body = await _body(request)
    _required(body, "webhook")
    hook = body["webhook"]
    if not isinstance(hook, dict):
        raise invalid("instance.webhook is not of a type(s) object")
    _required(hook, "enabled", "url")
    if "headers" in hook and not isinstance(hook["headers"], dict):
        raise invalid("instance.webhook.headers is not of a type(s) object")
    events = hook.get("events") or []
    if not isinstance(events, list):
        raise invalid("instance.webhook.events is not of a type(s) array")
    bad = [
        f"instance.webhook.events[{i}] is not one of enum values" for i, e in enumerate(events) if e not in ALL_EVENTS
    ]
    if bad:
        raise invalid(*bad)
    inst.webhook = world.make_webhook(inst, hook, existing=inst.webhook)
    return JSONResponse(inst.webhook.row(), 201)


@evolution
async def find_webhook(request: Request) -> Response:
    inst = _instance(request)
    return JSONResponse(inst.webhook.row() if inst.webhook else None)


# -- messages and chat --------------------------------------------------------------------------------------------


def _delay(body: dict[str, Any], name: str = "delay") -> int:
    value = body.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"instance.{name} is not of a type(s) integer")
    return int(value)


@evolution
async def send_text(request: Request) -> Response:
    world = _world(request)
    inst = _instance(request)
    body = await _body(request)
    _required(body, "number", "text")
    text = body["text"]
    if not isinstance(text, str) or not text.strip():
        raise SimRefusal(400, ["Text is required"])
    quoted = body.get("quoted")
    quoted_id = None
    if quoted is not None:
        key = quoted.get("key") if isinstance(quoted, dict) else None
        if not isinstance(key, dict) or "id" not in key:
            raise invalid('instance.quoted.key requires property "id"')
        quoted_id = str(key["id"])
    sent = await world.send_text(inst, str(body["number"]), text, delay_ms=_delay(body), quoted_id=quoted_id)
    return JSONResponse(sent, 201)


@evolution
async def send_presence(request: Request) -> Response:
    world = _world(request)
    inst = _instance(request)
    body = await _body(request)
    _required(body, "number", "presence", "delay")
    if body["presence"] not in _PRESENCES:
        raise invalid(f"instance.presence is not one of enum values: {','.join(_PRESENCES)}")
    await world.presence(inst, str(body["number"]), str(body["presence"]), _delay(body))
    return JSONResponse({"presence": body["presence"]}, 201)


@evolution
async def mark_read(request: Request) -> Response:
    world = _world(request)
    inst = _instance(request)
    body = await _body(request)
    _required(body, "readMessages")
    keys = body["readMessages"]
    if not isinstance(keys, list):
        raise invalid("instance.readMessages is not of a type(s) array")
    for i, key in enumerate(keys):
        if not isinstance(key, dict):
            raise invalid(f"instance.readMessages[{i}] is not of a type(s) object")
        _required_in(key, f"readMessages[{i}]", "id", "fromMe", "remoteJid")
    world.mark_read(inst, keys)
    return JSONResponse({"message": "Read messages", "read": "success"}, 201)


def _required_in(obj: dict[str, Any], where: str, *names: str) -> None:
    missing = [f'instance.{where} requires property "{n}"' for n in names if n not in obj]
    if missing:
        raise invalid(*missing)


@evolution
async def whatsapp_numbers(request: Request) -> Response:
    world = _world(request)
    _instance(request)
    body = await _body(request)
    _required(body, "numbers")
    numbers = body["numbers"]
    if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
        raise invalid("instance.numbers is not of a type(s) array")
    return JSONResponse(world.whatsapp_numbers(numbers))


async def welcome(request: Request) -> Response:
    cfg = _world(request).config
    return JSONResponse(
        {
            "status": 200,
            "message": "Welcome to the Evolution API, it is working!",
            "version": cfg.version,
            "clientName": cfg.client_name,
            "manager": cfg.server_url.rstrip("/") + "/manager",
            "documentation": "https://doc.evolution-api.com",
            "whatsappWebVersion": "2.3000.1028950000",
            "simulator": "mirage",
        }
    )


def create_sim_app(config: SimConfig | None = None) -> Starlette:
    """The simulator as an ASGI app; `app.state.world` holds its state (see docs/evolution.md)."""
    cfg = config or SimConfig()
    world = SimWorld(cfg)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await world.stop()

    routes = [
        Route("/", welcome, methods=["GET"]),
        Route("/instance/create", create_instance, methods=["POST"]),
        Route("/instance/connect/{instance}", connect, methods=["GET"]),
        Route("/instance/connectionState/{instance}", connection_state, methods=["GET"]),
        Route("/instance/restart/{instance}", restart, methods=["POST"]),
        Route("/instance/logout/{instance}", logout, methods=["DELETE"]),
        Route("/instance/delete/{instance}", delete_instance, methods=["DELETE"]),
        Route("/instance/fetchInstances", fetch_instances, methods=["GET"]),
        Route("/instance/setPresence/{instance}", set_presence, methods=["POST"]),
        Route("/webhook/set/{instance}", set_webhook, methods=["POST"]),
        Route("/webhook/find/{instance}", find_webhook, methods=["GET"]),
        Route("/message/sendText/{instance}", send_text, methods=["POST"]),
        Route("/chat/sendPresence/{instance}", send_presence, methods=["POST"]),
        Route("/chat/markMessageAsRead/{instance}", mark_read, methods=["POST"]),
        Route("/chat/whatsappNumbers/{instance}", whatsapp_numbers, methods=["POST"]),
        *SIM_ROUTES,
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.world = world
    return app
