"""A sample round to preview what a conversation's personas would say (`mirage say`, the demo): who speaks, in
which order. Pure: it reads the tenant's configuration only."""

from __future__ import annotations

from mirage.config.conversations import Conversation
from mirage.config.personas import Persona
from mirage.config.tenant import TenantConfig
from mirage.engine.generation.model import Step
from mirage.errors import MirageError
from mirage.i18n import t

# (step, speaker) for one sample round: both greet, a comment and its answer, a question and its answer, goodbyes
ROUND: tuple[tuple[Step, int], ...] = (
    ("greeting", 0),
    ("greeting", 1),
    ("comment", 0),
    ("answer", 1),
    ("question", 1),
    ("answer", 0),
    ("goodbye", 0),
    ("goodbye", 1),
)


def speakers(tenant: TenantConfig, conv: Conversation, number: str | None = None) -> list[tuple[str, Persona]]:
    """The conversation's bot numbers with a persona (or only `number`), as (number key, persona)."""
    keys = [number] if number else [p.number for p in conv.participants if p.number is not None]
    out: list[tuple[str, Persona]] = []
    for key in keys:
        n = tenant.numbers.get(key) if key else None
        if n is None:
            raise MirageError(t("text.unknown_number", number=key))
        if n.persona is not None and n.persona in tenant.personas:
            out.append((key, tenant.personas[n.persona]))
    if not out:
        raise MirageError(t("text.no_persona", conversation=conv.name))
    return out
