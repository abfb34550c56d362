"""The simulator's HTTP face: /v1/models and /v1/chat/completions in OpenAI's shapes, plus /sim controls.

It answers in character: the persona's name, the step, the daypart and the topic are read back from the prompt
Mirage's templates write, and the offline generator speaks. Faults (429 with retry-after, 500, slow answers, a
body that is not JSON, no choices) are injected from FaultConfig or POST /sim/faults. The same routes answer
without the /v1 prefix, so either base URL works.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections import deque
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mirage.config.types import Daypart
from mirage.engine.generation.guards import recent_set
from mirage.engine.generation.model import Step, Voice
from mirage.engine.generation.offline import generate
from mirage.integrations.openai_sim.config import FaultConfig, OpenAISimConfig

KEPT_REQUESTS = 1000  # the newest chat requests /sim/requests shows; a long demo does not grow without bound
_NAME = re.compile(r"Você é (.+?) e está conversando")
_TOPIC = re.compile(r"Assunto da conversa: (.+)")
_LINE = re.compile(r"^- (?:Você|A outra pessoa): (.*)$", re.MULTILINE)
_STEP_WORDS: tuple[tuple[str, Step], ...] = (
    ("saudação", "greeting"),
    ("Despeça-se", "goodbye"),
    ("pergunta", "question"),
    ("Responda", "answer"),
)
_DAYPART_WORDS: tuple[tuple[str, Daypart], ...] = (
    ("de manhã", "morning"),
    ("de tarde", "afternoon"),
    ("de noite", "evening"),
)


class SimState:
    """What the simulator remembers: the config, scripted replies and every chat request (without its key)."""

    def __init__(self, config: OpenAISimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.replies: list[str] = []
        self.requests: deque[dict[str, Any]] = deque(maxlen=KEPT_REQUESTS)

    def take(self, counter: str, rate: str) -> bool:
        f = self.config.faults
        left = getattr(f, counter)
        if left > 0:
            setattr(f, counter, left - 1)
            return True
        p: float = getattr(f, rate)
        return p > 0 and self.rng.random() < p


def _error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": None}}, status, headers)


def _state(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


def _authorized(request: Request) -> bool:
    expected = _state(request).config.api_key
    return expected is None or request.headers.get("authorization") == f"Bearer {expected}"


def _unauthorized() -> JSONResponse:
    return _error(401, "Incorrect API key provided.", "invalid_request_error")


async def models(request: Request) -> Response:
    if not _authorized(request):
        return _unauthorized()
    data = [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "mirage-sim"} for m in _models(request)]
    return JSONResponse({"object": "list", "data": data})


async def model(request: Request) -> Response:
    if not _authorized(request):
        return _unauthorized()
    name = request.path_params["model"]
    if name not in _models(request):
        return _error(404, f"The model `{name}` does not exist.", "invalid_request_error")
    return JSONResponse({"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "mirage-sim"})


def _models(request: Request) -> tuple[str, ...]:
    return _state(request).config.models


async def chat_completions(request: Request) -> Response:
    state = _state(request)
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return _error(400, "'messages' is a required property", "invalid_request_error")
    messages = [m for m in body["messages"] if isinstance(m, dict)]
    name = str(body.get("model", ""))
    state.requests.append(
        {
            "model": name,
            "temperature": body.get("temperature"),
            "messages": messages,
            "authorized": _authorized(request),
        }
    )
    if not _authorized(request):
        return _unauthorized()
    if name not in state.config.models:
        return _error(
            404, f"The model `{name}` does not exist or you do not have access to it.", "invalid_request_error"
        )
    faults: FaultConfig = state.config.faults
    if state.take("rate_limit_next", "rate_limit_rate"):
        retry = f"{faults.retry_after_s:g}"
        return _error(429, "Rate limit reached for requests.", "requests", {"retry-after": retry})
    if state.take("error_next", "error_rate"):
        return _error(500, "The server had an error while processing your request.", "server_error")
    if state.take("slow_next", "slow_rate"):
        await asyncio.sleep(faults.slow_s)
    if state.take("malformed_next", "malformed_rate"):
        return Response('{"id": "chatcmpl-broken", "choices": [{"message": ', 200, media_type="application/json")
    text = state.replies.pop(0) if state.replies else _in_character(messages, state.rng)
    choices = [] if state.take("empty_next", "empty_rate") else [_choice(text)]
    prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1
    completion_tokens = len(text) // 4 + 1
    return JSONResponse(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": None,
        }
    )


def _choice(text: str) -> dict[str, Any]:
    return {
        "index": 0,
        "message": {"role": "assistant", "content": text, "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }


def _in_character(messages: list[dict[str, Any]], rng: random.Random) -> str:
    """A reply as the persona the system prompt names, for the step and daypart the user prompt asks for."""
    system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    user = str(next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""))
    name = m[1] if (m := _NAME.search(system)) else "Tio"
    seed = m[1].strip() if (m := _TOPIC.search(system)) else ""
    step: Step = next((s for word, s in _STEP_WORDS if word in user), "comment")
    daypart: Daypart = next((d for word, d in _DAYPART_WORDS if word in system), "morning")
    avoid = recent_set(_LINE.findall(user))
    return generate(step, Voice(name, "", 0.3, {}, {}), daypart, rng, seed=seed, avoid=avoid)


async def set_faults(request: Request) -> Response:
    """Change faults at run time, e.g. {"rate_limit_next": 1, "retry_after_s": 0.1}; answers the faults in force."""
    faults = _state(request).config.faults
    try:
        body = json.loads(await request.body() or b"{}")
        faults.update(dict(body))
    except KeyError as e:
        return JSONResponse({"error": f"unknown fault {e.args[0]!r}"}, 400)
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        return JSONResponse({"error": f"bad value for {e}"}, 400)
    return JSONResponse(vars(faults))


async def script(request: Request) -> Response:
    """PUT {"replies": [...]}: the next chat answers, in order, before the in-character ones resume."""
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError):
        return JSONResponse({"error": "the body is not JSON"}, 400)
    replies = body.get("replies") if isinstance(body, dict) else None
    if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
        return JSONResponse({"error": "replies must be a list of strings"}, 400)
    _state(request).replies = list(replies)
    return JSONResponse({"replies": len(replies)})


async def requests_log(request: Request) -> Response:
    return JSONResponse(list(_state(request).requests))


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "service": "mirage openai simulator"})


def create_openai_sim_app(config: OpenAISimConfig | None = None) -> Starlette:
    """The ASGI app of `mirage sim openai`."""
    routes = [Route("/", health)]
    for prefix in ("/v1", ""):
        routes += [
            Route(f"{prefix}/models", models),
            Route(f"{prefix}/models/{{model:path}}", model),
            Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]),
        ]
    routes += [
        Route("/sim/faults", set_faults, methods=["POST"]),
        Route("/sim/replies", script, methods=["PUT"]),
        Route("/sim/requests", requests_log),
    ]
    app = Starlette(routes=routes)
    app.state.sim = SimState(config or OpenAISimConfig())
    return app
