"""`mirage import TENANT`: write tenant YAML from the rows in the database (the reverse of desired.py).

The files written load, validate and plan as `No changes.` against the rows they came from. Secrets
cannot be read back as values: they become `${<SLUG>_EVOLUTION_API_KEY}`-style references. Tag targets
come back as the contacts they selected; day groups come back as the seven weekdays.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import yaml

from mirage.config.types import KEY_PATTERN
from mirage.errors import MirageError
from mirage.reconcile.rows import ActualState, Row
from mirage.reconcile.state import read_state

DOWS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
PARTS = ("morning", "afternoon", "evening")
PHRASE_KINDS = ("comments", "questions", "answers", "goodbyes")
_KEY = re.compile(KEY_PATTERN)


class ImportError_(MirageError):
    """The tenant does not exist, or the target folder already holds files."""


def _schema(kind: str, depth: int = 2) -> str:
    return f"# yaml-language-server: $schema={'../' * depth}schemas/{kind}.schema.json\n"


def _num(v: Any) -> float | None:
    return float(Decimal(v)) if v is not None else None


def env_name(slug: str, secret: str) -> str:
    """`padaria-do-ze`, `evolution_api_key` -> `PADARIA_DO_ZE_EVOLUTION_API_KEY`."""
    return f"{slug.upper().replace('-', '_')}_{secret.upper()}"


def _window(enabled: bool, window: Mapping[str, Any] | None) -> Any:
    if enabled and window:
        return {"start": window.get("start"), "end": window.get("end")}
    if window:
        return {"enabled": False, "start": window.get("start"), "end": window.get("end")}
    return "off"


class _Tenant:
    def __init__(self, slug: str, actual: ActualState) -> None:
        tenant = next((r for r in actual.tenants if r.runtime.get("slug") == slug), None)
        if tenant is None or tenant.values.get("archived"):
            raise ImportError_(f"tenant {slug!r} is not in the database (or is archived)")
        self.slug = slug
        self.tenant = tenant
        self.rows = {name: [r for r in rows if r.tenant_id == tenant.id] for name, rows in actual.rows.items()}
        self.key: dict[str, str] = {}
        for name, col in (("personas", "key"), ("numbers", "key"), ("contacts", "wa_number")):
            self.key.update({r.id: str(r.values[col]) for r in self.rows.get(name, [])})

    def children(self, spec: str, parent: Row) -> list[Row]:
        return [r for r in self.rows.get(spec, []) if r.parent_id == parent.id]

    def tenant_doc(self) -> dict[str, Any]:
        v = self.tenant.values
        doc: dict[str, Any] = {k: v[k] for k in ("name", "plan", "timezone", "locale", "prune")}
        settings = next(iter(self.rows.get("settings", [])), None)
        if settings is not None:
            s = settings.values
            doc["settings"] = {
                k: s[k] for k in ("min_delay_ms", "max_delay_ms", "hourly_burst_limit", "daily_limit")
            } | {
                "quiet_hours": {k: s["quiet_hours"].get(k) for k in ("start", "end")},
                "humanize": s["humanize"],
                "allow_bot_to_bot": s["allow_bot_to_bot"],
            }
        secrets = {str(r.values["name"]) for r in self.rows.get("secrets", [])}
        evo: dict[str, Any] = {}
        if settings is not None and settings.values.get("evolution_base_url"):
            evo["base_url"] = settings.values["evolution_base_url"]
        if "evolution_api_key" in secrets:
            evo["api_key"] = "${" + env_name(self.slug, "evolution_api_key") + "}"
        if evo:
            doc["evolution"] = evo
        oai: dict[str, Any] = {}
        if "openai_api_key" in secrets:
            oai["api_key"] = "${" + env_name(self.slug, "openai_api_key") + "}"
        if settings is not None and settings.values.get("openai_base_url"):
            oai["base_url"] = settings.values["openai_base_url"]
        if oai:
            doc["openai"] = oai
        users = sorted(self.rows.get("members", []), key=lambda r: str(r.values["email"]))
        members = [
            {"email": r.values["email"], "role": r.values["role"]} for r in users if r.values["role"] != "viewer"
        ]
        viewers = [r.values["email"] for r in users if r.values["role"] == "viewer"]
        if members:
            doc["members"] = members
        if viewers:
            doc["viewers"] = viewers
        return doc

    def personas_doc(self) -> dict[str, Any]:
        out = {}
        for r in self.rows.get("personas", []):
            v = r.values
            phrases = v.get("phrases") or {}
            out[str(v["key"])] = {
                "name": v["name"],
                "style": v["style"],
                "greetings": {p: list(v[f"greeting_{p}"]) for p in PARTS},
                "phrases": {k: list(phrases.get(k, [])) for k in PHRASE_KINDS},
                "emoji_rate": _num(v["emoji_rate"]),
            }
        return {"personas": out}

    def numbers_doc(self) -> dict[str, Any]:
        out = {}
        for r in self.rows.get("numbers", []):
            v = r.values
            n: dict[str, Any] = {"label": v["label"], "number": v["wa_number"]}
            if v.get("persona_id"):
                n["persona"] = self.key[v["persona_id"]]
            if v.get("warmup_started_on"):
                n["warmup_started_on"] = v["warmup_started_on"]
            n["active"] = v["active"]
            out[str(v["key"])] = n
        return {"numbers": out}

    def contacts_doc(self) -> dict[str, Any]:
        return {
            "contacts": [
                {
                    "number": r.values["wa_number"],
                    "name": r.values["display_name"],
                    "tags": list(r.values["tags"]),
                    "notes": r.values["notes"],
                }
                for r in sorted(self.rows.get("contacts", []), key=lambda r: str(r.values["wa_number"]))
            ]
        }

    def _pairing_order(self, p: Row) -> tuple[bool, int, str, str]:
        """Configuration order (ADR 0060): by position; a row without one (written by hand) after, by its keys."""
        position = p.values.get("position")
        b = p.values["number_b_id"] or p.values["contact_b_id"]
        return (position is None, position or 0, self.key[p.values["number_a_id"]], self.key[b])

    def conversation_doc(self, conv: Row) -> dict[str, Any]:
        v = conv.values
        doc: dict[str, Any] = {
            "name": v["name"],
            "mode": v["mode"],
            "active": v["active"],
            "openai_model": v["openai_model"],
            "temperature": _num(v["temperature"]),
            "exchanges": {"min": v["exchanges_min"], "max": v["exchanges_max"]},
            "topic_strategy": v["topic_strategy"],
            "topic_refresh_minutes": v["topic_refresh_minutes"],
        }
        parts = sorted(self.children("participants", conv), key=lambda r: (r.values["start_order"], r.id))
        doc["participants"] = [
            {
                ("number" if p.values["number_id"] else "contact"): self.key[
                    p.values["number_id"] or p.values["contact_id"]
                ],
                "role": p.values["role"],
                "start_order": p.values["start_order"],
            }
            for p in parts
        ]
        doc["pairings"] = [
            {
                "a": self.key[p.values["number_a_id"]],
                "b": self.key[p.values["number_b_id"] or p.values["contact_b_id"]],
                "starts": p.values["starts"],
            }
            for p in sorted(self.children("pairings", conv), key=self._pairing_order)
        ]
        settings = next(iter(self.children("conversation_settings", conv)), None)
        if settings is not None:
            doc["settings"] = {k: val for k, val in settings.values.items() if val is not None}
        days = {str(r.values["day"]): r.values for r in self.children("schedule", conv)}
        if days:
            doc["schedule"] = self._schedule(days)
        topics = {}
        for tp in self.children("topics", conv):
            t = {k: tp.values[k] for k in ("seed", "system_prompt", "weight")}
            t |= {k: tp.values[k] for k in ("active_from", "active_to") if tp.values.get(k)}
            topics[str(tp.values["key"])] = t
        doc["topics"] = topics
        return doc

    def _schedule(self, days: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        rounds = Counter(d["max_rounds_per_window"] for d in days.values()).most_common(1)[0][0]
        pause = Counter((d["pause_between_rounds_min"], d["pause_between_rounds_max"]) for d in days.values())
        pmin, pmax = pause.most_common(1)[0][0]
        out_days: dict[str, Any] = {}
        for day in DOWS:
            d = days.get(day)
            if d is None:
                out_days[day] = "off"
                continue
            spec: dict[str, Any] = {p: _window(d[f"{p}_enabled"], d[f"{p}_window"]) for p in PARTS}
            if all(w == "off" for w in spec.values()):
                spec = {}
            if d["max_rounds_per_window"] != rounds:
                spec["max_rounds_per_window"] = d["max_rounds_per_window"]
            if (d["pause_between_rounds_min"], d["pause_between_rounds_max"]) != (pmin, pmax):
                spec["pause_between_rounds"] = {
                    "min": d["pause_between_rounds_min"],
                    "max": d["pause_between_rounds_max"],
                }
            out_days[day] = spec or "off"
        return {"max_rounds_per_window": rounds, "pause_between_rounds": {"min": pmin, "max": pmax}, "days": out_days}

    def outreach_doc(self) -> dict[str, Any]:
        out = {}
        for r in self.rows.get("policies", []):
            v = r.values
            pol: dict[str, Any] = {"number": self.key[v["number_id"]]}
            if v.get("persona_id"):
                pol["persona"] = self.key[v["persona_id"]]
            for k in (
                "daily_limit",
                "hourly_limit",
                "max_rounds_per_contact",
                "min_gap_minutes",
                "reply_wait_hours",
                "dayparts",
                "allow_days",
                "optout_keywords",
                "active",
            ):
                pol[k] = list(v[k]) if isinstance(v[k], list) else v[k]
            targets = sorted(self.children("targets", r), key=lambda t: (-int(t.values["priority"]), t.id))
            pol["targets"] = [
                {"contact": self.key[t.values["contact_id"]], "priority": t.values["priority"]} for t in targets
            ]
            out[str(v["key"])] = pol
        return {"policies": out}


def _dump(header: str, doc: Mapping[str, Any]) -> str:
    return header + yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True, width=120)


def render_tenant(slug: str, actual: ActualState) -> dict[str, str]:
    """Relative path -> YAML text for every file of `slug` (pure)."""
    t = _Tenant(slug, actual)
    files = {"tenant.yaml": _dump(_schema("tenant"), t.tenant_doc())}
    if t.rows.get("numbers"):
        files["numbers.yaml"] = _dump(_schema("numbers"), t.numbers_doc())
    if t.rows.get("personas"):
        files["personas.yaml"] = _dump(_schema("personas"), t.personas_doc())
    if t.rows.get("contacts"):
        files["contacts.yaml"] = _dump(_schema("contacts"), t.contacts_doc())
    if t.rows.get("policies"):
        files["outreach.yaml"] = _dump(_schema("outreach"), t.outreach_doc())
    for conv in t.rows.get("conversations", []):
        key = str(conv.values["key"])
        if not _KEY.match(key):  # it names a file: never let a row written past `mirage apply` pick the path
            raise ImportError_(f"conversation key {key!r} is not a valid key (1-63 lower-case letters, digits, - or _)")
        files[f"conversations/{key}.yaml"] = _dump(_schema("conversation", 3), t.conversation_doc(conv))
    return files


def import_tenant(conn: psycopg.Connection[Any], slug: str, target: Path, *, force: bool = False) -> list[Path]:
    """Write `slug`'s files under `target`; refuses to overwrite existing files unless `force`."""
    actual = read_state(conn, [slug], all_tenants=False)
    conn.rollback()
    files = render_tenant(slug, actual)
    existing = [target / name for name in files if (target / name).exists()]
    if existing and not force:
        raise ImportError_(f"{existing[0]} already exists (pass --force to overwrite)")
    written = []
    for name, text in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
