"""The send jobs' kept-alive connections to Evolution (ADR 0057) when the server goes away: a pooled connection the
server closed is never used for a send, so a restart costs a reconnect and never an `unknown` message; a server
that is down means the request never left, and the message is sent once it is back. Real Postgres, Redis and the
simulator over HTTP; the simulator's server is stopped and started again on its port with the same world."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from mirage.errors import TemporaryError
from mirage.integrations.evolution.client import pooled_http
from mirage.integrations.evolution_sim import serve_in_thread
from mirage.jobs.send import send_message, send_typed
from tests.runtime.conftest import Harness


def _queued(h: Harness) -> str:
    h.tick()
    h.work()
    rows = h.rows("select id::text from t_messages where status = 'queued'")
    assert len(rows) == 1
    return str(rows[0]["id"])


def _status(h: Harness, message_id: str) -> str:
    return str(h.rows("select status::text from t_messages where id = %s", message_id)[0]["status"])


def _connections(h: Harness) -> list[object]:
    return list(pooled_http(h.sim.url)._transport._pool.connections)  # type: ignore[attr-defined]


def _restart(h: Harness, *, down: Callable[[], None] | None = None) -> None:
    """Stop the simulator's HTTP server (its kept-alive connections close), run `down`, serve its app again."""
    port = urlsplit(h.sim.url).port or 0
    h.sim.stop()
    if down is not None:
        down()
    again = serve_in_thread(h.sim.app, port=port)
    h.sim._server, h.sim._thread = again._server, again._thread  # the harness stops it at the end


def test_a_send_after_evolution_restarted_goes_out_on_a_new_connection_and_is_sent(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    message_id = _queued(h)
    h.clock.advance(timedelta(minutes=1))
    assert send_message(message_id).startswith("typing")  # read receipt and "typing…" over a kept connection
    kept = _connections(h)
    assert len(kept) == 1
    _restart(h)  # that connection is dead now
    assert send_typed(message_id) == "sent"
    assert kept[0] not in _connections(h)  # the send went out on a new one
    assert h.sends() == 1 and _status(h, message_id) in ("sent", "delivered", "read")


def test_a_send_while_evolution_is_down_never_left_so_it_is_queued_again_and_sent_once_it_is_back(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness()
    message_id = _queued(h)
    h.clock.advance(timedelta(minutes=1))
    assert send_message(message_id).startswith("typing")
    outcomes: list[str] = []

    def send_while_down() -> None:
        with pytest.raises(TemporaryError, match="unreachable"):
            send_typed(message_id)  # RQ retries it with backoff
        outcomes.append(_status(h, message_id))

    _restart(h, down=send_while_down)
    assert outcomes == ["queued"] and h.sends() == 0
    assert send_typed(message_id) == "sent"  # RQ's retry, once Evolution is back
    assert h.sends() == 1 and _status(h, message_id) in ("sent", "delivered", "read")
