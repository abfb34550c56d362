"""The simulator's HTTP face: Evolution 2.3.6 routes with their real bodies, guards and error envelopes, plus /sim.

Order is Evolution's: CORS (when `cors_origins` is set), then the JSON body parser (bad JSON -> 400 before any
guard), unknown instance -> 404 before any auth check, `/instance/create` with a taken name -> 403 before auth, the
`apikey` header (the global key everywhere, an instance token on its own routes), then the route's request schema
(mirage.integrations.evolution.schemas) and only then the controller. Errors look like
`{"status": 400, "error": "Bad Request", "response": {"message": [[...]]}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mirage.integrations.evolution import schemas
from mirage.integrations.evolution_sim.bodies import BadBody, json_body, world_of
from mirage.integrations.evolution_sim.config import SimConfig
from mirage.integrations.evolution_sim.control import SIM_ROUTES
from mirage.integrations.evolution_sim.state import INTEGRATIONS, SimInstance
from mirage.integrations.evolution_sim.world import SimRefusal, SimWorld

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
}
Handler = Callable[[Request], Awaitable[Response]]


def envelope(status: int, message: Any, reason: str | None = None) -> dict[str, Any]:
    return {"status": status, "error": reason or _REASONS.get(status, "Error"), "response": {"message": message}}


def error(status: int, message: Any) -> JSONResponse:
    return JSONResponse(envelope(status, message), status)


def invalid(*problems: str) -> SimRefusal:
    """A JSON-schema validation failure: Evolution nests the messages one level deeper."""
    return SimRefusal(400, [list(problems)])


_world = world_of


async def _body(request: Request, schema: schemas.Schema) -> dict[str, Any]:
    """The body as `dataValidate` sees it (copied onto a DTO object, so an array's items become "0", "1", ...),
    refused with Evolution's 400 when it breaks the route's schema."""
    raw = await json_body(request)
    body = {str(i): v for i, v in enumerate(raw)} if isinstance(raw, list) else raw
    problems = schemas.problems(body, schema)
    if problems:
        raise invalid(*problems)
    return body


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
            await json_body(request)  # Express parses the body before any guard runs
        except BadBody as e:
            # body-parser's SyntaxError carries a status but no `error`: the error handler names it a 500's reason
            return JSONResponse(envelope(400, e.message, "Internal Server Error"), 400)
        try:
            return await handler(request)
        except SimRefusal as e:
            return JSONResponse(e.body, e.status) if e.body is not None else error(e.status, e.message)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


# -- instance ---------------------------------------------------------------------------------------------------


@evolution
async def create_instance(request: Request) -> Response:
    world = _world(request)
    raw = await json_body(request)
    name = raw.get("instanceName") if isinstance(raw, dict) else None
    if isinstance(name, str) and name in world.instances:  # instanceLoggedGuard runs before auth
        raise SimRefusal(403, [f'This name "{name}" is already in use.'])
    _require_global(request)
    body = await _body(request, schemas.CREATE_INSTANCE)
    if not isinstance(name, str) or not name.strip():
        # The schema lets a blank name through next to other keys; Evolution then fails inside the controller.
        raise invalid('The "instanceName" cannot be empty')
    integration = body.get("integration")
    if integration not in INTEGRATIONS:
        raise SimRefusal(400, ["Invalid integration"])
    webhook = body.get("webhook")
    if webhook is not None and (not isinstance(webhook, dict) or not isinstance(webhook.get("events"), list)):
        # WebhookController.set reads events.length: a TypeError, and the half-made instance is deleted
        raise SimRefusal(400, ["Cannot read properties of undefined (reading 'length')"])
    token = body.get("token")  # a string or absent: the schema checked it
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
        token=token or None,
        integration=str(integration),
        settings=settings,
        webhook=webhook,
        number=body.get("number") or None,
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
    answer = _world(request).restart(inst)
    if answer is None:  # restartInstance has no branch for `refused`: Express sends `json(undefined)`, an empty 200
        return Response(status_code=200, media_type="application/json")
    return JSONResponse(answer)


@evolution
async def logout(request: Request) -> Response:
    inst = _instance(request)
    if inst.state == "close":  # only `close` is refused: a `refused` instance is logged out like a connected one
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
    body = await _body(request, schemas.SET_PRESENCE)
    return JSONResponse({"presence": body["presence"]}, 201)


# -- webhook ----------------------------------------------------------------------------------------------------


@evolution
async def set_webhook(request: Request) -> Response:
    world = _world(request)
    inst = _instance(request)
    body = await _body(request, schemas.SET_WEBHOOK)
    hook = body["webhook"]
    inst.webhook = world.make_webhook(inst, hook, existing=inst.webhook)
    return JSONResponse(inst.webhook.row(), 201)


@evolution
async def find_webhook(request: Request) -> Response:
    inst = _instance(request)
    return JSONResponse(inst.webhook.row() if inst.webhook else None)


# -- messages and chat --------------------------------------------------------------------------------------------


def _delay(body: dict[str, Any]) -> int:
    """The `delay` in ms (the schema made it a number, or it is absent; null reads as 0, as in JavaScript)."""
    value = body.get("delay")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


@evolution
async def send_text(request: Request) -> Response:
    world = _world(request)
    inst = _instance(request)
    body = await _body(request, schemas.SEND_TEXT)
    text = body["text"]
    if not text or not text.strip():
        raise SimRefusal(400, ["Text is required"])
    quoted = body.get("quoted")
    key = quoted.get("key") if isinstance(quoted, dict) else None
    quoted_id = str(key["id"]) if isinstance(key, dict) else None
    sent = await world.send_text(inst, body["number"], text, delay_ms=_delay(body), quoted_id=quoted_id)
    return JSONResponse(sent, 201)


@evolution
async def send_presence(request: Request) -> Response:
    world = _world(request)
    inst = _instance(request)
    body = await _body(request, schemas.SEND_PRESENCE)
    await world.presence(inst, body["number"], body["presence"], _delay(body))
    return JSONResponse({"presence": body["presence"]}, 201)


@evolution
async def mark_read(request: Request) -> Response:
    world = _world(request)
    inst = _instance(request)
    body = await _body(request, schemas.MARK_READ)
    # The item schema has no "type": an item that is not an object passes, and markMessageAsRead skips it.
    world.mark_read(inst, [k for k in body["readMessages"] if isinstance(k, dict)])
    return JSONResponse({"message": "Read messages", "read": "success"}, 201)


@evolution
async def whatsapp_numbers(request: Request) -> Response:
    world = _world(request)
    _instance(request)
    # This route catches its own errors and answers `res.status(400).json(error)`: a validation failure is the
    # thrown object itself (no `response` wrapper), and a body without `numbers` fails in the controller with a
    # TypeError, which serialises as `{}`.
    try:
        body = await _body(request, schemas.WHATSAPP_NUMBERS)
    except SimRefusal as e:
        raise SimRefusal(400, e.message, body={"status": 400, "error": "Bad Request", "message": e.message}) from e
    numbers = body.get("numbers")
    if not isinstance(numbers, list):
        raise SimRefusal(400, [], body={})
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


class Cors:
    """Evolution's `cors` middleware, first in its chain: with `CORS_ORIGIN` set to anything but `*`, a request whose
    `Origin` is not listed (server-to-server calls send none) fails with a plain Error -> 500 "Not allowed by CORS"."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.origins and "*" not in self.origins:
            origin = Request(scope).headers.get("origin")
            if origin not in self.origins:
                answer = JSONResponse(envelope(500, "Not allowed by CORS"), 500)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_sim_app(config: SimConfig | None = None, *, world: SimWorld | None = None) -> Starlette:
    """The simulator as an ASGI app; `app.state.world` holds its state (see docs/evolution.md). `world` replaces
    the default one (`mirage simulate` passes a world that lives in virtual time)."""
    cfg = world.config if world is not None else (config or SimConfig())
    world = world or SimWorld(cfg)

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
    if cfg.cors_origins:
        app.add_middleware(Cors, origins=tuple(cfg.cors_origins))
    return app
