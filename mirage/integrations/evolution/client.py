"""A small synchronous httpx client for Evolution API v2 (Baileys), speaking the contract in docs/evolution.md.

The `apikey` header carries the global key for server-wide calls (create, fetch all) and the instance token for
per-instance routes. HTTP 200 with `{"error": true}` is an error. 4xx raise EvolutionClientError (permanent);
5xx, timeouts and connection failures are retried with exponential backoff and full jitter, bounded in attempts and
total time, and then raise EvolutionServerError (temporary, so an RQ job retries later) — except Evolution's
500 "Not allowed by CORS", which no retry can fix (EvolutionCorsError). No body leaves that Evolution would answer
400: numbers are normalised, de-duplicated and checked, empty lists refused, and every body checked against
Evolution's request schemas (schemas.py) first; a refusal is an EvolutionRequestError, raised before any HTTP.
"""

from __future__ import annotations

import logging
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import httpx

from mirage import __version__
from mirage.errors import PermanentError
from mirage.integrations.evolution import schemas
from mirage.integrations.evolution.errors import (
    EvolutionClientError,
    EvolutionCorsError,
    EvolutionRequestError,
    EvolutionServerError,
    evolution_message,
    is_cors_refusal,
)
from mirage.integrations.evolution.models import (
    PRESENCES,
    ConnectResult,
    CreatedInstance,
    InstanceInfo,
    NumberCheck,
    SentMessage,
    WebhookConfig,
    to_evolution_number,
)
from mirage.logs import register_secret

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 15.0
CREATE_TIMEOUT_S = 30.0  # create with qrcode: true waits 5 s for the first QR before answering
DELAY_MARGIN_S = 10.0  # sendText / sendPresence block for `delay`: the timeout must outlast it
# An idle kept-alive connection is dropped after this long, well before servers close theirs (Node's and uvicorn's
# default is 5 s): a request then never goes out on a connection the server is closing at that very moment, which
# would look like a send that may have been received (ADR 0057).
KEEPALIVE_EXPIRY_S = 2.0
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_EXPIRY_S)
_HEADERS = {"user-agent": f"mirage/{__version__}", "accept": "application/json"}


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: at most `attempts` tries, never sleeping past `total_time` seconds after the first."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    total_time: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**(attempt-1))] after failed try `attempt`."""
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


NO_RETRY = RetryPolicy(attempts=1)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _phone(method: str, path: str, number: str, field: str) -> str:
    """`number` as Evolution takes it (digits, or a JID), refused unless it matches Evolution's number pattern."""
    out = to_evolution_number(number)
    if not re.match(schemas.NUMBER_PATTERN, out, re.ASCII):
        raise EvolutionRequestError(
            method, path, [f"{field} {number!r} is not a phone number or JID (digits first, at least two characters)"]
        )
    return out


def _phones(method: str, path: str, numbers: Iterable[str], field: str) -> list[str]:
    """Each number normalised and checked, duplicates (after normalising) dropped, first occurrence kept."""
    return list(dict.fromkeys(_phone(method, path, n, field) for n in numbers))


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's roots), built once per process: building it reads the CA bundle,
    some 20-40 ms, and the runtime makes a client for every send."""
    return httpx.create_ssl_context()


# The process's kept-alive HTTP connections to each Evolution server (ADR 0057): one httpx.Client (its own
# thread-safe connection pool) per base URL, shared by every `EvolutionClient.pooled` of this process. No credential
# lives in it: tokens and keys go with each request. A forked child starts with an empty pool of its own.
_pool_lock = threading.Lock()
_pool: dict[str, httpx.Client] = {}


def _http_client(base_url: str, timeout: float, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=base_url, timeout=timeout, transport=transport, verify=_tls(), headers=_HEADERS, limits=_LIMITS
    )


def pooled_http(base_url: str) -> httpx.Client:
    """This process's shared keep-alive client for `base_url` (made on first use)."""
    key = base_url.rstrip("/")
    client = _pool.get(key)
    if client is None or client.is_closed:
        with _pool_lock:
            client = _pool.get(key)
            if client is None or client.is_closed:
                client = _pool[key] = _http_client(key, DEFAULT_TIMEOUT_S)
    return client


def pool_through(base_url: str, transport: httpx.BaseTransport) -> None:
    """This process's pooled calls to `base_url` go through `transport` (`mirage simulate`: the simulator's app in
    this process, ADR 0051); `close_pool` forgets it."""
    key = base_url.rstrip("/")
    with _pool_lock:
        previous = _pool.get(key)
        _pool[key] = _http_client(key, DEFAULT_TIMEOUT_S, transport)
    if previous is not None:
        previous.close()


def close_pool() -> None:
    """Close every pooled connection of this process (they reopen on next use)."""
    with _pool_lock:
        clients = list(_pool.values())
        _pool.clear()
    for client in clients:
        client.close()


def _forget_pool_in_child() -> None:
    # The parent's sockets are not this process's to use; its lock may have been held by another thread at fork.
    global _pool_lock, _pool
    _pool_lock, _pool = threading.Lock(), {}


os.register_at_fork(after_in_child=_forget_pool_in_child)


class EvolutionClient:
    """One Evolution server; `api_key` is its global key (AUTHENTICATION_API_KEY), `token=` an instance's key."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        delay_margin: float = DELAY_MARGIN_S,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        register_secret(api_key)
        self.timeout = timeout
        self.retry = retry
        self.delay_margin = delay_margin
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._owns_http = http is None
        self._http = http if http is not None else _http_client(self.base_url, timeout, transport)

    @classmethod
    def pooled(cls, base_url: str, api_key: str | None, *, retry: RetryPolicy = RetryPolicy()) -> EvolutionClient:
        """A client on this process's kept-alive connections to `base_url` (`pooled_http`): cheap to make per job,
        and its `close()` leaves the shared connections open for the next one."""
        return cls(base_url, api_key, retry=retry, http=pooled_http(base_url))

    def __repr__(self) -> str:
        return f"EvolutionClient({self.base_url!r})"

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> EvolutionClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
        repeatable: bool = True,
        auth: bool = True,
        schema: schemas.Schema | None = None,
    ) -> Any:
        """One call with retries; returns the decoded JSON body (or text) of a 2xx answer.

        A call that is not `repeatable` (sendText) is retried only when it certainly never reached Evolution. With a
        `schema`, a body Evolution would refuse raises EvolutionRequestError and is never sent.
        """
        if schema is not None:
            problems = schemas.problems(json, schema)
            if problems:
                raise EvolutionRequestError(method, path, problems)
        key = token if token is not None else self._api_key
        register_secret(key)
        headers = {"apikey": key} if auth and key else {}
        deadline = self._clock() + self.retry.total_time
        attempt = 0
        while True:
            attempt += 1
            started = self._clock()
            cause: Exception | None = None
            try:
                resp = self._http.request(
                    method, path, json=json, params=params, headers=headers, timeout=timeout or self.timeout
                )
            except httpx.TimeoutException as e:
                # A request that timed out may have been acted on: repeat it only if the connection never opened.
                cause = e
                err = EvolutionServerError(method, path, None, f"timed out ({type(e).__name__})")
                retryable = repeatable or isinstance(e, httpx.ConnectTimeout)
            except httpx.TransportError as e:
                cause = e
                err = EvolutionServerError(method, path, None, f"cannot reach Evolution ({type(e).__name__})")
                retryable = repeatable or isinstance(e, httpx.ConnectError)
            else:
                body = _decode(resp)
                log.debug(
                    "evolution call",
                    extra={
                        "method": method,
                        "path": path,
                        "status": resp.status_code,
                        "attempt": attempt,
                        "ms": round((self._clock() - started) * 1000, 1),
                    },
                )
                if is_cors_refusal(resp.status_code, body):
                    raise EvolutionCorsError(method, path, body)
                if resp.status_code >= 500:
                    err = EvolutionServerError(method, path, resp.status_code, evolution_message(body))
                    retryable = repeatable  # a proxy's 504, or a failure after sending: it may have been acted on
                elif resp.status_code >= 400:
                    raise EvolutionClientError(method, path, resp.status_code, evolution_message(body), body)
                elif isinstance(body, dict) and body.get("error") is True:
                    # connect and restart catch their own failures and answer 200 {"error": true, "message": ...}
                    raise EvolutionClientError(method, path, resp.status_code, evolution_message(body), body)
                else:
                    return body
            if not retryable or attempt >= self.retry.attempts:
                raise err from cause
            pause = self.retry.backoff(attempt, self._rng)
            if self._clock() + pause > deadline:
                raise err from cause
            log.info(
                "evolution call failed, retrying",
                extra={"method": method, "path": path, "status": err.status, "attempt": attempt, "pause_s": pause},
            )
            self._sleep(pause)

    # -- server-wide (global key) -------------------------------------------------------------------------

    def welcome(self) -> dict[str, Any]:
        """`GET /`: Evolution's banner with its `version` (no key needed)."""
        body = self._request("GET", "/", auth=False)
        return body if isinstance(body, dict) else {}

    def create_instance(
        self,
        name: str,
        *,
        webhook: WebhookConfig,
        token: str | None = None,
        number: str | None = None,
        qrcode: bool = True,
        groups_ignore: bool = True,
        reject_call: bool = False,
        always_online: bool = False,
        read_messages: bool = False,
        read_status: bool = False,
        sync_full_history: bool = False,
    ) -> CreatedInstance:
        """`POST /instance/create` with the nested webhook (events always explicit: none would mean all)."""
        path = "/instance/create"
        if not name.strip():
            raise EvolutionRequestError("POST", path, ["instanceName must not be empty"])
        payload: dict[str, Any] = {
            "instanceName": name,
            "integration": "WHATSAPP-BAILEYS",
            "qrcode": qrcode,
            "rejectCall": reject_call,
            "groupsIgnore": groups_ignore,
            "alwaysOnline": always_online,
            "readMessages": read_messages,
            "readStatus": read_status,
            "syncFullHistory": sync_full_history,
            "webhook": webhook.body(),
        }
        if token is not None:
            register_secret(token)
            payload["token"] = token
        if number is not None:
            payload["number"] = _phone("POST", path, number, "number")
        body = self._request(
            "POST",
            path,
            json=payload,
            timeout=max(self.timeout, CREATE_TIMEOUT_S),
            schema=schemas.CREATE_INSTANCE,
        )
        created = CreatedInstance.parse(body if isinstance(body, dict) else {})
        register_secret(created.token)
        return created

    def fetch_instances(self, *, instance_name: str | None = None, token: str | None = None) -> list[InstanceInfo]:
        """`GET /instance/fetchInstances`: every instance (global key) or those owning `token`."""
        params = {"instanceName": instance_name} if instance_name else None
        body = self._request("GET", "/instance/fetchInstances", token=token, params=params)
        rows = [InstanceInfo.parse(r) for r in body if isinstance(r, dict)] if isinstance(body, list) else []
        for r in rows:
            register_secret(r.token)
        return rows

    # -- per instance (instance token) --------------------------------------------------------------------

    def connect(self, instance: str, *, token: str | None = None, number: str | None = None) -> ConnectResult:
        """`GET /instance/connect/{instance}`: a QR (and a pairing code when `number` is given) or the state."""
        path = f"/instance/connect/{_segment(instance)}"
        params = {"number": _phone("GET", path, number, "number")} if number else None
        body = self._request("GET", path, token=token, params=params)
        return ConnectResult.parse(body)

    def connection_state(self, instance: str, *, token: str | None = None) -> str:
        """`GET /instance/connectionState/{instance}`: open | connecting | close | refused."""
        body = self._request("GET", f"/instance/connectionState/{_segment(instance)}", token=token)
        inst = body.get("instance") if isinstance(body, dict) else None
        state = inst.get("state") if isinstance(inst, dict) else None
        return str(state or "close")

    def restart(self, instance: str, *, token: str | None = None) -> ConnectResult:
        """`POST /instance/restart/{instance}` (the docs say PUT; the code says POST)."""
        return ConnectResult.parse(self._request("POST", f"/instance/restart/{_segment(instance)}", token=token))

    def logout(self, instance: str, *, token: str | None = None) -> dict[str, Any]:
        """`DELETE /instance/logout/{instance}`; 400 when it is not connected."""
        body = self._request("DELETE", f"/instance/logout/{_segment(instance)}", token=token)
        return body if isinstance(body, dict) else {}

    def delete_instance(self, instance: str, *, token: str | None = None) -> dict[str, Any]:
        """`DELETE /instance/delete/{instance}` (logs out first when connected)."""
        body = self._request("DELETE", f"/instance/delete/{_segment(instance)}", token=token)
        return body if isinstance(body, dict) else {}

    def set_presence(self, instance: str, presence: str, *, token: str | None = None) -> dict[str, Any]:
        """`POST /instance/setPresence/{instance}`: the account's own presence (available / unavailable)."""
        _check_presence(presence)
        body = self._request(
            "POST",
            f"/instance/setPresence/{_segment(instance)}",
            token=token,
            json={"presence": presence},
            schema=schemas.SET_PRESENCE,
        )
        return body if isinstance(body, dict) else {}

    def set_webhook(
        self, instance: str, webhook: WebhookConfig, *, token: str | None = None, enabled: bool = True
    ) -> dict[str, Any]:
        """`POST /webhook/set/{instance}` with the body wrapped in `webhook` and `byEvents` / `base64` keys."""
        body = self._request(
            "POST",
            f"/webhook/set/{_segment(instance)}",
            token=token,
            json={"webhook": webhook.body(enabled=enabled)},
            schema=schemas.SET_WEBHOOK,
        )
        return body if isinstance(body, dict) else {}

    def find_webhook(self, instance: str, *, token: str | None = None) -> dict[str, Any]:
        """`GET /webhook/find/{instance}`: the stored webhook row (its headers hold the secrets in clear)."""
        body = self._request("GET", f"/webhook/find/{_segment(instance)}", token=token)
        return body if isinstance(body, dict) else {}

    def send_text(
        self,
        instance: str,
        number: str,
        text: str,
        *,
        token: str | None = None,
        delay_ms: int | None = None,
        link_preview: bool | None = None,
        quoted_id: str | None = None,
        quoted_text: str | None = None,
        mentions_everyone: bool | None = None,
        mentioned: Sequence[str] | None = None,
    ) -> SentMessage:
        """`POST /message/sendText/{instance}` (top-level text / delay / linkPreview / quoted).

        Evolution shows "typing…" for `delay_ms` and answers only after it, so the timeout grows with it. A read
        timeout or a 5xx is not retried here (the message may have gone out); the caller's job decides with its
        own idempotency key.
        """
        path = f"/message/sendText/{_segment(instance)}"
        if not text.strip():
            raise EvolutionRequestError("POST", path, ["text must not be blank (Evolution: Text is required)"])
        payload: dict[str, Any] = {"number": _phone("POST", path, number, "number"), "text": text}
        if delay_ms is not None:
            payload["delay"] = int(delay_ms)
        if link_preview is not None:
            payload["linkPreview"] = link_preview
        if quoted_id is not None:
            quoted: dict[str, Any] = {"key": {"id": quoted_id}}
            if quoted_text is not None:
                quoted["message"] = {"conversation": quoted_text}
            payload["quoted"] = quoted
        if mentions_everyone is not None:
            payload["mentionsEveryOne"] = mentions_everyone
        if mentioned:  # none: the key is left out (an empty list is a 400)
            payload["mentioned"] = _phones("POST", path, mentioned, "mentioned")
        body = self._request(
            "POST",
            path,
            token=token,
            json=payload,
            timeout=self._delay_timeout(delay_ms),
            repeatable=False,
            schema=schemas.SEND_TEXT,
        )
        return SentMessage.parse(body if isinstance(body, dict) else {})

    def send_presence(
        self, instance: str, number: str, presence: str, delay_ms: int, *, token: str | None = None
    ) -> str:
        """`POST /chat/sendPresence/{instance}`: all three fields required; blocks `delay_ms`, then `paused`."""
        _check_presence(presence)
        path = f"/chat/sendPresence/{_segment(instance)}"
        body = self._request(
            "POST",
            path,
            token=token,
            json={"number": _phone("POST", path, number, "number"), "presence": presence, "delay": int(delay_ms)},
            timeout=self._delay_timeout(delay_ms),
            schema=schemas.SEND_PRESENCE,
        )
        return str(body.get("presence", presence)) if isinstance(body, dict) else presence

    def mark_read(
        self, instance: str, keys: Iterable[Mapping[str, Any]], *, token: str | None = None
    ) -> dict[str, Any]:
        """`POST /chat/markMessageAsRead/{instance}` with `{remoteJid, fromMe, id}` keys (`@lid` keys are dropped).

        Repeated keys are sent once; no keys at all is refused (Evolution answers an empty list with 400).
        """
        path = f"/chat/markMessageAsRead/{_segment(instance)}"
        unique = {
            (str(k["remoteJid"]), bool(k.get("fromMe", False)), str(k["id"])): None for k in keys
        }  # dict: insertion order
        if not unique:
            raise EvolutionRequestError("POST", path, ["no message keys to mark as read"])
        read = [{"remoteJid": jid, "fromMe": from_me, "id": mid} for jid, from_me, mid in unique]
        body = self._request("POST", path, token=token, json={"readMessages": read}, schema=schemas.MARK_READ)
        return body if isinstance(body, dict) else {}

    def whatsapp_numbers(self, instance: str, numbers: Iterable[str], *, token: str | None = None) -> list[NumberCheck]:
        """`POST /chat/whatsappNumbers/{instance}`: which numbers are on WhatsApp (check sparingly: ban risk).

        Each number is asked once (repeats, also in another spelling, are dropped); none at all is refused.
        """
        path = f"/chat/whatsappNumbers/{_segment(instance)}"
        unique = _phones("POST", path, numbers, "numbers")
        if not unique:
            raise EvolutionRequestError("POST", path, ["no numbers to check"])
        body = self._request("POST", path, token=token, json={"numbers": unique}, schema=schemas.WHATSAPP_NUMBERS)
        return [NumberCheck.parse(r) for r in body if isinstance(r, dict)] if isinstance(body, list) else []

    def _delay_timeout(self, delay_ms: int | None) -> float:
        return self.timeout + max(0, delay_ms or 0) / 1000 + self.delay_margin


def _check_presence(presence: str) -> None:
    if presence not in PRESENCES:
        raise PermanentError(f"presence {presence!r} is not one of {', '.join(PRESENCES)}")


def _decode(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text
