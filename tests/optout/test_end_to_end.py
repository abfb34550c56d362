"""A person writes to a bot through the Evolution simulator; the webhook stores it, the follow-up job detects the
opt-out, and (only when MIRAGE_OPTOUT_CONFIRMATION is on) one confirmation goes back, once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mirage.settings import get_settings
from tests.runtime.conftest import Harness

PERSON = "+5521998760001"


def _to_person(h: Harness) -> list[str]:
    return [m.text for m in list(h.sim.world.messages.values()) if m.to_jid.startswith(PERSON[1:])]


@pytest.mark.parametrize("confirm", [False, True])
def test_an_optout_written_on_whatsapp_is_recorded_and_confirmed_once_only_when_asked(
    make_harness: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch, confirm: bool
) -> None:
    if confirm:
        monkeypatch.setenv("MIRAGE_OPTOUT_CONFIRMATION", "true")
    get_settings.cache_clear()
    h = make_harness()
    h.sim.say(PERSON, "mirage-acme-bot1", "Oi, quem é?")
    h.sim.say(PERSON, "mirage-acme-bot1", "SAIR")
    h.settle()
    h.sim.say(PERSON, "mirage-acme-bot1", "PARAR!")  # a second opt-out: no second confirmation
    h.settle()
    rows: list[dict[str, Any]] = h.rows(
        "select keyword, source, confirmation_sent_at is not null as confirmed from t_optouts where tenant_id = %s "
        "and wa_number = %s",
        h.tenant_id,
        PERSON,
    )
    assert rows == [{"keyword": "sair", "source": "keyword", "confirmed": confirm}]
    verdicts = h.rows(
        "select body, meta->>'optout' as verdict from t_messages where direction = 'in' and from_jid like %s "
        "order by created_at",
        PERSON[1:] + "%",
    )
    written = ("Oi, quem é?", "SAIR", "PARAR!")  # (the simulated person may also answer our confirmation)
    assert [(v["body"], v["verdict"]) for v in verdicts if v["body"] in written] == [
        ("Oi, quem é?", "none"),
        ("SAIR", "optout"),
        ("PARAR!", "optout"),
    ]
    expected = ["Pronto: você não vai receber mais mensagens nossas."] if confirm else []
    assert _to_person(h) == expected
