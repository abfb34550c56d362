"""Desired state: the validated config models (mirage.config) turned into resources, one per row to exist.

Pure: secret values come from the `environ` mapping the shell passes (service.load, which also registers
them for log redaction). Every column a YAML file controls is set explicitly, defaults included, so a row edited by
hand to a value the YAML leaves at its default still shows up as drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import time
from pathlib import Path
from typing import Any

from mirage.config import Fleet, TenantConfig
from mirage.config.conversations import Conversation
from mirage.config.schedule import DaypartWindow
from mirage.reconcile.resources import DesiredState, DesiredTenant, Ref, Resource, SecretValue

EVOLUTION_KEY = "evolution_api_key"
OPENAI_KEY = "openai_api_key"


def _hhmm(t: time | None) -> str | None:
    return t.strftime("%H:%M") if t is not None else None


def _window(w: DaypartWindow) -> dict[str, Any] | None:
    if w.start is None and w.end is None:
        return None
    return {"start": _hhmm(w.start), "end": _hhmm(w.end)}


def _prev(keys: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    return tuple((k,) for k in keys)


def _conversation(key: str, c: Conversation) -> list[Resource]:
    addr = f"conversations.{key}"
    out = [
        Resource(
            "conversations",
            (key,),
            {
                "key": key,
                "name": c.name,
                "mode": c.mode,
                "active": c.active,
                "openai_model": c.openai_model,
                "temperature": c.temperature,
                "topic_strategy": c.topic_strategy,
                "topic_refresh_minutes": c.topic_refresh_minutes,
                "exchanges_min": c.exchanges.min,
                "exchanges_max": c.exchanges.max,
            },
            previous=_prev(c.previous_keys),
        ),
        Resource("conversation_settings", (), c.settings.model_dump(), parent=addr),
    ]
    for p in c.participants:
        out.append(
            Resource(
                "participants",
                (p.ref,),
                {
                    "participant_kind": p.kind,
                    "number_id": Ref(f"numbers.{p.number}") if p.number is not None else None,
                    "contact_id": Ref(f"contacts.{p.contact}") if p.contact is not None else None,
                    "role": p.role,
                    "start_order": p.start_order,
                },
                parent=addr,
            )
        )
    for position, pr in enumerate(c.pairings):
        out.append(
            Resource(
                "pairings",
                (pr.a, pr.b),
                {
                    "number_a_id": Ref(f"numbers.{pr.a}"),
                    "number_b_id": Ref(f"numbers.{pr.b_number}") if pr.b_number else None,
                    "contact_b_id": Ref(f"contacts.{pr.b_contact}") if pr.b_contact else None,
                    "starts": pr.starts,
                    "position": position,  # round_robin takes the pairs in the order they are listed (ADR 0060)
                },
                parent=addr,
            )
        )
    if c.schedule is not None:
        for day, d in c.schedule.days.items():
            out.append(
                Resource(
                    "schedule",
                    (day,),
                    {
                        "day": day,
                        "morning_enabled": d.morning.enabled,
                        "morning_window": _window(d.morning),
                        "afternoon_enabled": d.afternoon.enabled,
                        "afternoon_window": _window(d.afternoon),
                        "evening_enabled": d.evening.enabled,
                        "evening_window": _window(d.evening),
                        "max_rounds_per_window": d.max_rounds_per_window,
                        "pause_between_rounds_min": d.pause_min,
                        "pause_between_rounds_max": d.pause_max,
                    },
                    parent=addr,
                )
            )
    for tkey, t in c.topics.items():
        out.append(
            Resource(
                "topics",
                (tkey,),
                {
                    "key": tkey,
                    "seed": t.seed,
                    "system_prompt": t.system_prompt,
                    "active_from": t.active_from,
                    "active_to": t.active_to,
                    "weight": t.weight,
                },
                parent=addr,
                previous=_prev(t.previous_keys),
            )
        )
    return out


def _secret(name: str, ref: Any, environ: Mapping[str, str]) -> Resource:
    return Resource("secrets", (name,), {"name": name}, secret=SecretValue(ref.env, ref.resolve(environ)))


def tenant_resources(cfg: TenantConfig, environ: Mapping[str, str]) -> tuple[Resource, ...]:
    """Every row one tenant's YAML asks for, parents before children."""
    s = cfg.settings
    out: list[Resource] = [
        Resource(
            "tenant",
            (),
            {
                "name": cfg.name,
                "plan": cfg.plan,
                "timezone": cfg.timezone,
                "locale": cfg.locale,
                "prune": cfg.prune,
                "archived": False,
            },
        ),
        Resource(
            "settings",
            (),
            {
                "min_delay_ms": s.min_delay_ms,
                "max_delay_ms": s.max_delay_ms,
                "hourly_burst_limit": s.hourly_burst_limit,
                "daily_limit": s.daily_limit,
                "quiet_hours": {"start": _hhmm(s.quiet_hours.start), "end": _hhmm(s.quiet_hours.end)},
                "humanize": s.humanize,
                "allow_bot_to_bot": s.allow_bot_to_bot,
                "evolution_base_url": cfg.evolution.base_url,
                "openai_base_url": cfg.openai.base_url if cfg.openai else None,
            },
        ),
    ]
    out += [Resource("members", (m.email,), {"email": m.email, "role": m.role}) for m in cfg.members]
    out += [Resource("members", (v,), {"email": v, "role": "viewer"}) for v in cfg.viewers]
    if cfg.evolution.api_key is not None:
        out.append(_secret(EVOLUTION_KEY, cfg.evolution.api_key, environ))
    if cfg.openai is not None and cfg.openai.api_key is not None:
        out.append(_secret(OPENAI_KEY, cfg.openai.api_key, environ))
    for key, p in cfg.personas.items():
        out.append(
            Resource(
                "personas",
                (key,),
                {
                    "key": key,
                    "name": p.name,
                    "style": p.style,
                    "greeting_morning": p.greetings.morning,
                    "greeting_afternoon": p.greetings.afternoon,
                    "greeting_evening": p.greetings.evening,
                    "phrases": p.phrases.model_dump(),
                    "emoji_rate": p.emoji_rate,
                },
                previous=_prev(p.previous_keys),
            )
        )
    for key, n in cfg.numbers.items():
        out.append(
            Resource(
                "numbers",
                (key,),
                {
                    "key": key,
                    "label": n.label,
                    "wa_number": n.number,
                    "persona_id": Ref(f"personas.{n.persona}") if n.persona else None,
                    "warmup_started_on": n.warmup_started_on,
                    "active": n.active,
                },
                previous=_prev(n.previous_keys),
            )
        )
    for e164, c in cfg.contacts.items():
        out.append(
            Resource(
                "contacts",
                (e164,),
                {"wa_number": e164, "display_name": c.name, "tags": c.tags, "notes": c.notes},
                previous=_prev(c.previous_numbers),
            )
        )
    for key, conv in cfg.conversations.items():
        out += _conversation(key, conv)
    for key, pol in cfg.outreach.items():
        out.append(
            Resource(
                "policies",
                (key,),
                {
                    "key": key,
                    "number_id": Ref(f"numbers.{pol.number}"),
                    "persona_id": Ref(f"personas.{pol.persona}") if pol.persona else None,
                    "daily_limit": pol.daily_limit,
                    "hourly_limit": pol.hourly_limit,
                    "max_rounds_per_contact": pol.max_rounds_per_contact,
                    "min_gap_minutes": pol.min_gap_minutes,
                    "reply_wait_hours": pol.reply_wait_hours,
                    "dayparts": pol.dayparts,
                    "allow_days": pol.allow_days,
                    "optout_keywords": pol.optout_keywords,
                    "active": pol.active,
                },
                previous=_prev(pol.previous_keys),
            )
        )
        out += [
            Resource(
                "targets",
                (t.contact,),
                {"contact_id": Ref(f"contacts.{t.contact}"), "priority": t.priority},
                parent=f"outreach.{key}",
            )
            for t in pol.targets
        ]
    return tuple(out)


def _slug(d: str | Path) -> str:
    return Path(d).name if isinstance(d, Path) or "/" in str(d) else str(d)


def desired_state(
    fleet: Fleet,
    *,
    environ: Mapping[str, str],
    scope: Iterable[str] | None = None,
) -> DesiredState:
    """The desired state of `fleet`; `scope` (slugs from --tenant) limits which tenants are planned."""
    selected = tuple(sorted(set(scope))) if scope is not None else None
    empty = tuple(sorted({_slug(d) for d in getattr(fleet, "empty_dirs", ()) or ()}))
    tenants = {
        slug: DesiredTenant(slug, tenant_resources(cfg, environ), prune=cfg.prune)
        for slug, cfg in sorted(fleet.tenants.items())
        if selected is None or slug in selected
    }
    warnings = tuple(f"tenants.d/{s}: empty folder, skipped (an empty folder never deletes a tenant)" for s in empty)
    return DesiredState(tenants=tenants, scope=selected, skipped=empty, warnings=warnings)
