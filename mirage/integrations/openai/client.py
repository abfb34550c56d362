"""The OpenAI chat client (the `openai` package) behind the ChatPort: timeout, bounded retries, no key in errors.

The package's own retries are off (`max_retries=0`): this module retries 429 / 5xx / timeouts / connection
errors itself, with exponential backoff and jitter, honouring `retry-after` only up to MAX_WAIT_S, and a whole
call stops retrying after about two request timeouts, so a round never waits on a model for minutes. When the
attempts are spent, the answer carries the reason and compose() falls back to the offline generator. Error
reasons are built from status codes and exception types, never from response bodies or the client's
messages, so neither the key nor a prompt reaches a log.

A process-wide breaker per endpoint and key keeps an outage from costing every message its own timeouts:
after BREAKER_FAILURES calls in a row that failed slowly or for the server's sake (timeouts, connection
errors, 429, 5xx), the model is not asked for BREAKER_OPEN_S and the offline generator answers at once
(reason `unavailable`); then one call tries again, and a success closes the breaker.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import openai

from mirage.engine.generation.model import ChatMessage, LLMAnswer, LLMConfig
from mirage.logs import register_secret

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BASE_DELAY_S = 0.5
MAX_DELAY_S = 4.0
MAX_WAIT_S = 5.0  # a retry-after longer than this is not waited for: the offline generator answers now
MAX_TOKENS = 200
BUDGET_TIMEOUTS = 2  # one call (all attempts and pauses) gives up after this many request timeouts
BREAKER_FAILURES = 3  # calls in a row failing with an outage's reason open the breaker...
BREAKER_OPEN_S = 60.0  # ...for this long: messages go offline at once, then one call tries again

_clients: dict[tuple[str, str, float], openai.OpenAI] = {}
_clients_lock = threading.Lock()


class Breaker:
    """Failures in a row of one endpoint and key, and until when the model is not asked (monotonic seconds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures = 0
        self.open_until = 0.0

    def allows(self, now: float) -> bool:
        with self._lock:
            return now >= self.open_until

    def record(self, reason: str | None, now: float) -> None:
        """A call ended: `reason` None for an answer, else the failure's reason (only an outage's counts)."""
        with self._lock:
            if reason is None:
                self.failures, self.open_until = 0, 0.0
            elif _outage(reason):
                self.failures += 1
                if self.failures >= BREAKER_FAILURES:
                    self.open_until = now + BREAKER_OPEN_S


_breakers: dict[tuple[str, str], Breaker] = {}


def breaker(config: LLMConfig) -> Breaker:
    """The breaker of `config`'s endpoint and key (one per process)."""
    key = (config.base_url or DEFAULT_BASE_URL, hashlib.sha256((config.api_key or "").encode()).hexdigest())
    with _clients_lock:
        return _breakers.setdefault(key, Breaker())


def reset_breakers() -> None:
    """Forget every endpoint's failures (tests; a process start does the same)."""
    with _clients_lock:
        _breakers.clear()


def _outage(reason: str) -> bool:
    return reason in ("timeout", "connection") or reason.startswith(("http_429", "http_5"))


def openai_client(config: LLMConfig) -> openai.OpenAI:
    """A shared `openai.OpenAI` per (endpoint, key, timeout), so connections are reused across messages."""
    base_url = config.base_url or DEFAULT_BASE_URL
    key = config.api_key or "unused"  # OpenAI-compatible servers without auth still need a non-empty key
    register_secret(config.api_key)
    cache_key = (base_url, hashlib.sha256(key.encode()).hexdigest(), config.timeout_s)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            client = openai.OpenAI(api_key=key, base_url=base_url, timeout=config.timeout_s, max_retries=0)
            _clients[cache_key] = client
    return client


class OpenAIChat:
    """A ChatPort on an OpenAI-compatible endpoint: one call = up to 1 + max_retries requests."""

    def __init__(
        self,
        config: LLMConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._client = openai_client(config)
        self._breaker = breaker(config)
        self._sleep = sleep
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"OpenAIChat({self.config!r})"

    def __call__(self, messages: list[ChatMessage], *, model: str, temperature: float) -> LLMAnswer:
        if not self._breaker.allows(time.monotonic()):
            return LLMAnswer(None, 0, "unavailable")  # the endpoint failed call after call a moment ago
        answer = self._ask(messages, model=model, temperature=temperature)
        self._breaker.record(None if answer.text is not None else answer.error or "no_answer", time.monotonic())
        return answer

    def _ask(self, messages: list[ChatMessage], *, model: str, temperature: float) -> LLMAnswer:
        payload: list[Any] = [{"role": m.role, "content": m.content} for m in messages]
        reason = "no_attempt"
        deadline = time.monotonic() + BUDGET_TIMEOUTS * self.config.timeout_s
        for attempt in range(self.config.max_retries + 1):
            wait: float | None = None
            try:
                resp = self._client.chat.completions.create(
                    model=model, messages=payload, temperature=temperature, max_tokens=MAX_TOKENS, n=1
                )
            except openai.APITimeoutError:
                reason = "timeout"
            except openai.APIConnectionError:
                reason = "connection"
            except openai.APIStatusError as e:
                reason = f"http_{e.status_code}"
                if e.status_code != 429 and e.status_code < 500:
                    return self._failed(reason, attempt)  # 400/401/403/404: retrying will not help
                wait = _retry_after(e.response.headers)
                if wait is not None and wait > MAX_WAIT_S:
                    return self._failed(f"{reason}_retry_after_{wait:g}s", attempt)
            except (openai.APIResponseValidationError, ValueError, TypeError):
                return self._failed("malformed", attempt)
            else:
                return _answer(resp)
            if attempt < self.config.max_retries:
                pause = wait if wait is not None else self._backoff(attempt)
                if time.monotonic() + pause >= deadline:
                    return self._failed(reason, attempt)  # the whole call stays within its budget
                self._sleep(pause)
        return self._failed(reason, self.config.max_retries)

    def _backoff(self, attempt: int) -> float:
        return min(BASE_DELAY_S * 2.0**attempt, MAX_DELAY_S) * (1 - 0.25 * self._rng.random())

    def _failed(self, reason: str, attempt: int) -> LLMAnswer:
        log.warning(
            "openai request failed; the offline generator answers",
            extra={"reason": reason, "attempts": attempt + 1, "base_url": self.config.base_url or DEFAULT_BASE_URL},
        )
        return LLMAnswer(None, 0, reason)


def _answer(resp: Any) -> LLMAnswer:
    """The first choice's text and the tokens used; an answer without one is `empty`, a wrong shape `malformed`."""
    usage = getattr(resp, "usage", None)
    tokens = int(getattr(usage, "total_tokens", 0) or 0) if usage is not None else 0
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list):
        return LLMAnswer(None, tokens, "malformed")
    if not choices:
        return LLMAnswer(None, tokens, "empty")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if not isinstance(content, str) or not content.strip():
        return LLMAnswer(None, tokens, "empty")
    return LLMAnswer(content, tokens)


def _retry_after(headers: Any) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name) if headers is not None else None
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            continue
    return None
