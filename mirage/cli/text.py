"""`mirage say TENANT/CONVERSATION` (preview a persona's messages), `mirage text usage TENANT` (tokens per day) and
`mirage sim openai` (the local model server)."""

from __future__ import annotations

import json
import os
import random
from datetime import UTC, datetime
from pathlib import Path

import click

from mirage.cli.base import cli
from mirage.cli.evolution import sim
from mirage.config import load_fleet
from mirage.config.conversations import Conversation
from mirage.config.tenant import TenantConfig
from mirage.config.types import DAYPARTS, Daypart
from mirage.engine.calendar import local_datetime
from mirage.engine.generation import STEPS, Line, LLMConfig, Step, choose_topic
from mirage.engine.generation.preview import ROUND, speakers
from mirage.errors import MirageError
from mirage.i18n import t
from mirage.logs import register_secret
from mirage.settings import Settings, get_settings


def daypart_at(now: datetime, tz: str) -> Daypart:
    """The daypart of `now` in `tz`: morning before noon, afternoon before 18:00, else evening."""
    hour = local_datetime(now, tz).hour
    return "morning" if 5 <= hour < 12 else "afternoon" if 12 <= hour < 18 else "evening"


def _llm(tenant: TenantConfig, conv: Conversation, settings: Settings) -> LLMConfig | None:
    oai = tenant.openai
    key = oai.api_key.resolve(os.environ) if oai is not None and oai.api_key is not None else None
    register_secret(key)  # the shell resolves secrets and registers them for log redaction (ADR 0021)
    if key is None and settings.openai_api_key is not None:
        key = settings.openai_api_key.get_secret_value()
    base_url = (oai.base_url if oai is not None else None) or settings.openai_base_url
    if key is None and base_url is None:
        return None
    return LLMConfig(
        model=conv.openai_model,
        temperature=conv.temperature,
        api_key=key,
        base_url=base_url,
        timeout_s=settings.openai_timeout_s,
    )


@cli.command("say")
@click.argument("target", metavar="TENANT/CONVERSATION")
@click.option("--step", type=click.Choice(STEPS), default=None, help="Only this step (default: whole sample rounds).")
@click.option("--n", "count", type=click.IntRange(1, 200), default=5, show_default=True, help="How many texts/rounds.")
@click.option(
    "--daypart", type=click.Choice(DAYPARTS), default=None, help="Daypart to speak in (default: now, tenant's zone)."
)
@click.option("--number", default=None, help="Speak as this bot number of the conversation (default: its bots).")
@click.option("--topic", default=None, help="Talk about this topic key (default: the conversation's strategy).")
@click.option("--seed", type=int, default=None, help="Random seed, for repeatable previews.")
@click.option("--offline", is_flag=True, help="Use the offline generator even when a model is configured.")
@click.option(
    "--dir",
    "path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Tenants folder (default tenants.d, or MIRAGE_TENANTS_DIR).",
)
def say(
    target: str,
    step: Step | None,
    count: int,
    daypart: Daypart | None,
    number: str | None,
    topic: str | None,
    seed: int | None,
    offline: bool,
    path: Path | None,
) -> None:
    """Preview what a conversation's personas would say, from the YAML, before opening a pull request.

    Offline unless the tenant's openai settings or OPENAI_API_KEY / OPENAI_BASE_URL name a model (then through
    it, with the same guards and fallback as the runtime). Each line shows where the text came from.
    """
    from mirage.integrations.openai import compose

    tenant_slug, sep, conv_key = target.partition("/")
    if not sep or not tenant_slug or not conv_key:
        raise click.BadParameter(t("text.bad_target", target=target), param_hint="TENANT/CONVERSATION")
    settings = get_settings()
    fleet = load_fleet(path or settings.tenants_dir, only=[tenant_slug])
    tenant = fleet.tenants.get(tenant_slug)
    if tenant is None or conv_key not in tenant.conversations:
        raise MirageError(t("text.unknown_conversation", target=target))
    conv = tenant.conversations[conv_key]
    now = datetime.now(UTC)
    part = daypart or daypart_at(now, tenant.timezone)
    rng = random.Random(seed)
    if topic is not None and topic not in conv.topics:
        raise MirageError(t("text.unknown_topic", topic=topic, conversation=conv_key))
    pick = (
        topic
        or choose_topic(
            conv.topics, conv.topic_strategy, None, now, tenant.timezone, conv.topic_refresh_minutes, rng
        ).key
    )
    chosen = conv.topics[pick] if pick else None
    llm = None if offline else _llm(tenant, conv, settings)
    voices = speakers(tenant, conv, number)
    where = f"{llm.model} @ {llm.base_url or 'api.openai.com'}" if llm else t("text.offline")
    click.echo(t("text.header", target=target, daypart=part, topic=pick or "-", where=where))
    history: list[tuple[str, str]] = []
    script = [(step, i % len(voices)) for i in range(count)] if step else list(ROUND) * count
    for i, (s, side) in enumerate(script):
        who, persona = voices[side % len(voices)]
        lines = [Line(text, author == who) for author, text in history]
        out = compose(s, persona, chosen, lines, part, rng, llm)
        history.append((who, out.text))
        note = f"{out.source}" + (f", {out.tokens} tokens" if out.tokens else "")
        if out.reasons:
            note += ", " + "; ".join(out.reasons)
        if not step and i % len(ROUND) == 0 and i:
            click.echo("")
        click.echo(f"{s:<9} {persona.name:<12} {out.text}  " + click.style(f"({note})", dim=True))


@cli.group("text")
def text_group() -> None:
    """Message text in the database: what the model wrote, what the offline generator wrote, tokens per day."""


@text_group.command("usage")
@click.argument("tenant")
@click.option(
    "--days", type=click.IntRange(1, 366), default=7, show_default=True, help="How many local days, today included."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people, json for tools.",
)
def usage_command(tenant: str, days: int, fmt: str) -> None:
    """Texts and model tokens of TENANT per local day (public.text_usage), with the total: what the model costs.

    Counts the texts the runtime wrote: by the model, offline (no model configured), and offline fallbacks
    after a model failure or refused answer. Days are the tenant's own (its time zone).
    """
    from mirage.db.connect import connect
    from mirage.db.message_text import UnknownTenant, tenant_usage
    from mirage.db.sessions import service_session

    with connect() as conn, service_session(conn) as c:
        try:
            report = tenant_usage(c, tenant, datetime.now(UTC), days)
        except UnknownTenant:
            raise MirageError(t("text.unknown_tenant", tenant=tenant)) from None
    if fmt == "json":
        doc = {
            "tenant": report.tenant,
            "timezone": report.timezone,
            "tokens": report.tokens,
            "days": [{**vars(d), "day": d.day.isoformat()} for d in report.days],
        }
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(t("text.usage_header", tenant=report.tenant, days=days, zone=report.timezone))
    first, *labels = t("text.usage_columns").split("|")
    rows = [(d.day.isoformat(), *(getattr(d, k) for k in _USAGE_FIELDS)) for d in report.days]
    rows.append((t("text.usage_total"), *(sum(getattr(d, k) for d in report.days) for k in _USAGE_FIELDS)))
    widths = [max(len(str(v)) for v in column) for column in zip((first, *labels), *rows, strict=True)]
    for row in [(first, *labels), *rows]:
        cells = [f"{row[0]!s:<{widths[0]}}", *(f"{v!s:>{w}}" for v, w in zip(row[1:], widths[1:], strict=True))]
        click.echo("  ".join(cells))


_USAGE_FIELDS = ("messages", "openai_messages", "offline_messages", "fallbacks", "tokens")


@sim.command("openai")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it loopback).")
@click.option("--port", type=click.IntRange(1, 65535), default=8091, show_default=True, help="Port to listen on.")
@click.option(
    "--api-key",
    default=None,
    help="Demand `Authorization: Bearer KEY` (401 otherwise). Default: any key is accepted.",
)
@click.option("--model", "models", multiple=True, help="A model to offer (repeatable). Default: gpt-4o-mini and co.")
@click.option("--rate-limit-rate", type=click.FloatRange(0, 1), default=0.0, help="Share of chats answering 429.")
@click.option("--retry-after", type=click.FloatRange(min=0), default=1.0, show_default=True, help="429 retry-after, s.")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, help="Share of chats answering 500.")
@click.option("--slow-rate", type=click.FloatRange(0, 1), default=0.0, help="Share of chats that answer slowly.")
@click.option("--slow", "slow_s", type=click.FloatRange(min=0), default=20.0, show_default=True, help="Slow answer, s.")
@click.option("--malformed-rate", type=click.FloatRange(0, 1), default=0.0, help="Share of chats with broken JSON.")
@click.option("--empty-rate", type=click.FloatRange(0, 1), default=0.0, help="Share of chats with no choices.")
@click.option("--seed", type=int, default=None, help="Random seed, for repeatable runs.")
def sim_openai(
    host: str,
    port: int,
    api_key: str | None,
    models: tuple[str, ...],
    rate_limit_rate: float,
    retry_after: float,
    error_rate: float,
    slow_rate: float,
    slow_s: float,
    malformed_rate: float,
    empty_rate: float,
    seed: int | None,
) -> None:
    """Run a local OpenAI-compatible server (/v1/models, /v1/chat/completions) that answers in character.

    Point a tenant's openai.base_url (or OPENAI_BASE_URL) at http://HOST:PORT/v1. Faults can also be changed
    at run time with POST /sim/faults (see docs/generation.md).
    """
    import uvicorn

    from mirage.integrations.openai_sim import FaultConfig, OpenAISimConfig, create_openai_sim_app
    from mirage.integrations.openai_sim.config import DEFAULT_MODELS

    config = OpenAISimConfig(
        api_key=api_key,
        models=models or DEFAULT_MODELS,
        faults=FaultConfig(
            rate_limit_rate=rate_limit_rate,
            retry_after_s=retry_after,
            error_rate=error_rate,
            slow_rate=slow_rate,
            slow_s=slow_s,
            malformed_rate=malformed_rate,
            empty_rate=empty_rate,
        ),
        seed=seed,
    )
    click.echo(t("text.sim_listening", url=f"http://{host}:{port}/v1", models=", ".join(config.models)))
    uvicorn.run(create_openai_sim_app(config), host=host, port=port, log_level="warning", ws="none")
