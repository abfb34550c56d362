"""One tenant folder -> TenantConfig: read each file, validate it, cross-check, resolve; collect every problem.

Reading is the only I/O; everything after the bytes are in memory is pure. Only this tenant's node graphs
are alive while it loads (the texts are kept for `Fleet.locate`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mirage.config.contacts import Contact, ContactsFile, CsvProblem, parse_contacts_csv
from mirage.config.conversations import Conversation, ConversationDefaults, ConversationSpec
from mirage.config.crosscheck import Draft, check
from mirage.config.messages import Issue, issues_from
from mirage.config.numbers import NumbersFile
from mirage.config.outreach import OutreachFile, OutreachPolicy, OutreachPolicySpec, OutreachTarget
from mirage.config.personas import PersonasFile
from mirage.config.schedule import ScheduleSpec, WeekSchedule, expand_schedule
from mirage.config.sources import (
    CONTACTS,
    CONVERSATIONS_DIR,
    NUMBERS,
    OUTREACH,
    PERSONAS,
    TENANT,
    Location,
    TenantSources,
)
from mirage.config.tenant import TenantConfig, TenantFile
from mirage.config.types import KEY_PATTERN, SLUG_PATTERN
from mirage.config.yamlsource import Source, YamlError, build, compose, decode
from mirage.engine.text import normalize_keywords
from mirage.errors import Problem

FILES: dict[str, str] = {
    "tenant.yaml": TENANT,
    "numbers.yaml": NUMBERS,
    "personas.yaml": PERSONAS,
    "contacts.yaml": CONTACTS,
    "contacts.csv": CONTACTS,
    "outreach.yaml": OUTREACH,
}
_IGNORED_SUFFIXES = (".md", ".txt")
_SLUG = re.compile(SLUG_PATTERN)
_KEY = re.compile(KEY_PATTERN)
M = TypeVar("M", bound=BaseModel)


def display_path(path: Path) -> str:
    """`path` relative to the current directory when it is below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symbolic link loop
        return str(path)


def leaves(path: str | Path, boundary: Path) -> bool:
    """Whether `path` is a symbolic link whose target lies outside `boundary` (the resolved tenants folder).

    realpath, unlike Path.resolve(), never raises on a link loop: a loop stays inside and is then no file.
    """
    if not os.path.islink(path):
        return False
    return not Path(os.path.realpath(path)).is_relative_to(boundary)


def _tenant_files(folder: Path, boundary: Path) -> tuple[dict[str, Path], list[Path], list[Path], list[Path]]:
    """(known kind -> file, conversation files, unexpected files, links leaving `boundary`) of a tenant folder."""
    known: dict[str, Path] = {}
    convs: list[Path] = []
    unexpected: list[Path] = []
    outside: list[Path] = []
    with os.scandir(folder) as entries:
        for e in sorted(entries, key=lambda e: e.name):
            if e.name.startswith("."):
                continue
            if leaves(e.path, boundary):
                outside.append(folder / e.name)  # never read: its content could be anything on the machine
            elif e.name == CONVERSATIONS_DIR and e.is_dir():
                with os.scandir(e.path) as inner:
                    for c in sorted(inner, key=lambda c: c.name):
                        if c.name.startswith("."):
                            continue
                        path = folder / CONVERSATIONS_DIR / c.name
                        if leaves(c.path, boundary):
                            outside.append(path)
                        else:
                            ok = c.name.endswith(".yaml") and c.is_file()
                            (convs if ok else unexpected).append(path)
            elif e.name in FILES and e.is_file():
                known[e.name] = folder / e.name
            elif not e.name.endswith(_IGNORED_SUFFIXES):
                unexpected.append(folder / e.name)
    return known, convs, unexpected, outside


def outside_message(boundary: Path) -> str:
    """The problem of a symbolic link whose target is outside the tenants folder."""
    return f"a symbolic link that leaves {boundary.name}: refused (copy the file into the tenant folder)"


def load_tenant(
    folder: Path, environ: Mapping[str, str], display: str | None = None, boundary: Path | None = None
) -> tuple[TenantConfig | None, TenantSources | None, list[Problem]]:
    """One tenant folder -> (config or None when it has problems, its sources or None when empty, problems).

    `environ` resolves `${VAR}` in non-secret fields; `display` is how the folder is shown in messages (default:
    relative to the current directory); symbolic links whose target leaves `boundary` (default: the folder's
    parent, tenants.d) are refused unread.
    """
    boundary = boundary if boundary is not None else folder.resolve().parent
    known, convs, unexpected, outside = _tenant_files(folder, boundary)
    if not known and not convs and not unexpected and not outside:
        return None, None, []
    t = _TenantLoad(folder, environ, display)
    for path in outside:
        t.problem(Location(t.show(path), 0, 0), outside_message(boundary))
    t.refused = {p.name for p in outside if p.parent == folder}
    t.conversations_refused = any(p.parent != folder or p.name == CONVERSATIONS_DIR for p in outside)
    try:
        return t.run(known, convs, unexpected), t.sources, t.problems
    finally:
        t.sources.release()


class _TenantLoad:
    """The state of loading one tenant: its sources, the problems found so far, the validated parts."""

    def __init__(self, folder: Path, environ: Mapping[str, str], prefix: str | None = None) -> None:
        self.folder = folder
        self.root = str(folder)
        self.slug = folder.name
        self.prefix = prefix if prefix is not None else display_path(folder)
        self.sources = TenantSources(folder=self.prefix)
        self.problems: list[Problem] = []
        self.context = {"environ": environ}
        self.refused: set[str] = set()  # files refused unread: their part counts as failed, not as absent
        self.conversations_refused = False

    def show(self, path: Path) -> str:
        """Display path of a file inside this tenant folder (no filesystem calls)."""
        return self.prefix + str(path)[len(self.root) :]

    def problem(self, loc: Location, message: str) -> None:
        self.problems.append(Problem(loc.path, loc.line, loc.col, message))

    def issues(self, issues: Iterable[Issue], where: Callable[[Issue], Location]) -> None:
        for i in issues:
            loc = where(i)
            self.problems.append(Problem(loc.path, loc.line, loc.col, i.message, i.severity, i.rule))

    def in_file(self, kind: str) -> Callable[[Issue], Location]:
        return lambda i: self.sources.in_file(kind, i.path, i.key)

    def in_conversation(self, key: str) -> Callable[[Issue], Location]:
        return lambda i: self.sources.in_conversation(key, i.path, i.key)

    def read(self, path: Path, kind: str) -> Any:
        """The built value of one YAML file, or None after recording its problems."""
        display = self.show(path)
        try:
            text = decode(path.read_bytes())
            src = Source(path, display, text, kind, compose(text))
        except YamlError as e:
            self.problems.append(Problem(display, e.line, e.col, e.message))
            self.sources.files[kind] = Source(path, display, "", kind)
            return None
        except OSError as e:
            self.problems.append(Problem(display, 0, 0, f"cannot read: {e.strerror}"))
            return None
        self.sources.files[kind] = src
        try:
            value, found = build(src.root())
        except YamlError as e:
            self.problems.append(Problem(display, e.line, e.col, e.message))
            return None
        for y in found:
            self.problems.append(Problem(display, y.line, y.col, y.message))
        return {} if value is None else value

    def validate(self, model: type[M], value: Any, where: Callable[[Issue], Location]) -> M | None:
        try:
            return model.model_validate(value, context=self.context)
        except ValidationError as e:
            self.issues(issues_from(e, model), where)
            return None

    def run(self, known: dict[str, Path], convs: list[Path], unexpected: list[Path]) -> TenantConfig | None:
        if not _SLUG.match(self.slug):
            self.problem(
                Location(self.sources.folder, 0, 0),
                "folder name is not a valid tenant slug (1-63 lower-case letters, digits or '-')",
            )
        for p in unexpected:
            self.problem(
                Location(self.show(p), 0, 0),
                "unexpected file (expected tenant.yaml, numbers.yaml, "
                "personas.yaml, contacts.yaml or contacts.csv, outreach.yaml, conversations/<key>.yaml)",
            )
        if "contacts.yaml" in known and "contacts.csv" in known:
            self.problem(
                Location(self.show(known["contacts.csv"]), 0, 0),
                "both contacts.yaml and contacts.csv exist: keep one",
            )
        if "tenant.yaml" not in known:
            self.problem(Location(self.sources.folder, 0, 0), "missing tenant.yaml")

        draft = Draft(slug=self.slug, conversations_failed=self.conversations_refused)
        raw_tenant = self.read(known["tenant.yaml"], TENANT) if "tenant.yaml" in known else None
        if raw_tenant is not None:
            draft.tenant = self.validate(TenantFile, raw_tenant, self.in_file(TENANT))
        for name, model, kind in (
            ("numbers.yaml", NumbersFile, NUMBERS),
            ("personas.yaml", PersonasFile, PERSONAS),
            ("outreach.yaml", OutreachFile, OUTREACH),
        ):
            if name not in known:
                setattr(draft, kind, None if name in self.refused else {})
                continue
            raw = self.read(known[name], kind)
            parsed = None if raw is None else self.validate(model, raw, self.in_file(kind))
            if parsed is not None:
                setattr(draft, kind, getattr(parsed, "policies" if kind == OUTREACH else kind))
        draft.contacts = self.contacts(known)
        if draft.outreach is not None:
            self.sources.target_specs = {k: [(t.contact, t.tag) for t in p.targets] for k, p in draft.outreach.items()}

        defaults = raw_tenant.get("defaults") if isinstance(raw_tenant, dict) else None
        defaults = (
            {k: v for k, v in defaults.items() if k in ConversationDefaults.model_fields}
            if isinstance(defaults, dict)
            else {}
        )
        for path in convs:
            key = path.stem
            kind = f"{CONVERSATIONS_DIR}/{key}"
            if not _KEY.match(key):
                self.problem(
                    Location(self.show(path), 0, 0),
                    "file name is not a valid key (1-63 lower-case letters, digits, '-' or '_')",
                )
            raw = self.read(path, kind)
            if raw is None:
                draft.conversations_failed = True
                continue
            merged = merge_defaults(defaults, raw) if isinstance(raw, dict) else raw
            spec = self.validate(ConversationSpec, merged, self.in_conversation(key))
            if spec is None:
                draft.conversations_failed = True
            else:
                draft.conversations[key] = spec
                week = conversation_week(spec, draft.tenant.defaults.schedule if draft.tenant else None)
                if week is not None:
                    draft.weeks[key] = week

        self.issues(check(draft), lambda i: self.sources.locate(i.path, i.key))
        if self.problems or draft.tenant is None:
            return None
        return resolve(draft, draft.tenant)

    def contacts(self, known: dict[str, Path]) -> list[Contact] | None:
        if "contacts.yaml" in known:
            raw = self.read(known["contacts.yaml"], CONTACTS)
            parsed = None if raw is None else self.validate(ContactsFile, raw, self.in_file(CONTACTS))
        elif "contacts.csv" in known:
            parsed = self.contacts_csv(known["contacts.csv"])
        elif self.refused & {"contacts.yaml", "contacts.csv"}:
            return None
        else:
            return []
        if parsed is None:
            return None
        self.sources.contact_index = {}
        for i, c in enumerate(parsed.contacts):
            self.sources.contact_index.setdefault(c.number, i)
        self.sources.contact_tags = {c.number: list(c.tags) for c in parsed.contacts}
        return list(parsed.contacts)

    def contacts_csv(self, path: Path) -> ContactsFile | None:
        display = self.show(path)
        try:
            text = decode(path.read_bytes())
            rows = parse_contacts_csv(text)
        except (YamlError, CsvProblem) as e:
            self.problems.append(Problem(display, e.line, e.col, e.message))
            return None
        self.sources.files[CONTACTS] = Source(path, display, text, CONTACTS)
        self.sources.csv_rows = rows
        return self.validate(
            ContactsFile, {"contacts": [r.value for r in rows]}, lambda i: self.sources.in_contacts(i.path, i.key)
        )


def merge_defaults(defaults: Mapping[str, Any], conversation: Mapping[str, Any]) -> dict[str, Any]:
    """`conversation` with `defaults` filled in; mappings merge key by key, the conversation's value wins.

    `schedule` is left out: a key-by-key merge of `days` would let a default's narrower group beat the
    conversation's broader one; conversation_week() layers the two schedules instead.
    """
    return _merge({k: v for k, v in defaults.items() if k != "schedule"}, conversation)


def _merge(defaults: Mapping[str, Any], conversation: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(conversation)
    for k, v in defaults.items():
        if k not in out:
            out[k] = v
        elif isinstance(v, dict) and isinstance(out[k], dict):
            out[k] = _merge(v, out[k])
    return out


def conversation_week(spec: ConversationSpec, defaults: ScheduleSpec | None) -> WeekSchedule | None:
    """The conversation's seven days: its own schedule over the tenant's `defaults.schedule`.

    None (never runs) when neither has a schedule, or when the conversation says `schedule: null`.
    """
    if spec.schedule is None and ("schedule" in spec.model_fields_set or defaults is None):
        return None
    return expand_schedule(*(s for s in (defaults, spec.schedule) if s is not None))


def expand_targets(policy: OutreachPolicySpec, contacts: Sequence[Contact]) -> list[OutreachTarget]:
    """One target per contact: tags expanded, duplicates keep the highest priority (first-seen order)."""
    best: dict[str, tuple[int, list[str]]] = {}
    for t in policy.targets:
        if t.contact is not None:
            matches, tag = [t.contact], None
        else:
            matches, tag = [c.number for c in contacts if t.tag in c.tags], t.tag
        for number in matches:
            prio, tags = best.get(number, (t.priority, []))
            best[number] = (max(prio, t.priority), tags + ([tag] if tag and tag not in tags else []))
    return [OutreachTarget(contact=n, priority=p, via_tags=tags) for n, (p, tags) in best.items()]


def resolve(draft: Draft, tenant: TenantFile) -> TenantConfig:
    """A checked Draft -> TenantConfig: schedules expanded, tags expanded, keywords normalised."""
    contacts = draft.contacts or []
    conversations = {
        k: Conversation.model_validate({**_fields(spec), "schedule": draft.weeks.get(k)})
        for k, spec in draft.conversations.items()
    }
    outreach = {
        k: OutreachPolicy.model_validate(
            {
                **_fields(p),
                "targets": expand_targets(p, contacts),
                "optout_keywords": normalize_keywords(p.optout_keywords),
            }
        )
        for k, p in (draft.outreach or {}).items()
    }
    fields = {k: v for k, v in _fields(tenant).items() if k != "defaults"}
    return TenantConfig.model_validate(
        {
            **fields,
            "slug": draft.slug,
            "numbers": draft.numbers or {},
            "personas": draft.personas or {},
            "conversations": conversations,
            "contacts": {c.number: c for c in contacts},
            "outreach": outreach,
        }
    )


def _fields(model: BaseModel) -> dict[str, Any]:
    return {name: getattr(model, name) for name in type(model).model_fields}
