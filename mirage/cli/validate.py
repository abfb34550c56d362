"""`mirage validate`, `mirage lint` and `mirage schema export`: the configuration checks CI runs on every PR."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import click

from mirage.cli.base import cli
from mirage.config import ConfigError, Fleet, Problem, load_fleet
from mirage.i18n import t
from mirage.settings import get_settings

_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text: path:line:col: message; json: one document for CI annotations; github: ::error workflow commands.",
)
_TENANT = click.option("--tenant", "only", multiple=True, help="Check only this tenant slug (repeatable).")
_PATH = click.argument("path", required=False, type=click.Path(path_type=Path))


def _emit(problems: Sequence[Problem], fmt: str, summary: str) -> None:
    if fmt == "json":
        doc = {
            "ok": not any(p.severity == "error" for p in problems),
            "problems": [
                {
                    "path": p.path,
                    "line": p.line,
                    "col": p.col,
                    "severity": p.severity,
                    "rule": p.rule,
                    "message": p.message,
                }
                for p in problems
            ],
        }
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    for p in problems:
        if fmt == "github":
            level = "error" if p.severity == "error" else "warning"
            props = f"file={p.path},line={p.line or 1},col={p.col or 1}" + (f",title={p.rule}" if p.rule else "")
            click.echo(f"::{level} {props}::{p.message}")
        else:
            click.echo(str(p))
    click.echo(summary, err=fmt != "text")


def _load(path: Path | None, only: Sequence[str], fmt: str) -> Fleet:
    root = path if path is not None else get_settings().tenants_dir
    try:
        return load_fleet(root, only=list(only) or None)
    except ConfigError as e:
        _emit(e.problems, fmt, t("config.invalid", n=len(e.problems)))
        raise SystemExit(1) from None


@cli.command()
@_PATH
@_FORMAT
@_TENANT
def validate(path: Path | None, fmt: str, only: tuple[str, ...]) -> None:
    """Check the tenant YAML under PATH (default tenants.d, or MIRAGE_TENANTS_DIR).

    Reports every problem at once as path:line:col: message and exits 1 when there is any: unknown keys,
    wrong types, duplicate YAML keys, references to unknown personas/numbers/contacts/tags, windows that end
    before they start, bot<->human without an outreach policy, and more (docs/configuration.md).
    """
    fleet = _load(path, only, fmt)
    _emit([], fmt, t("config.valid", n=len(fleet.tenants)))
    if fleet.empty_dirs:
        click.echo(t("config.empty_dirs", names=", ".join(fleet.empty_dirs)), err=True)


@cli.command()
@_PATH
@click.option("--strict", is_flag=True, help="Treat findings as errors: exit 1 when there is any.")
@click.option(
    "--today",
    type=click.DateTime(["%Y-%m-%d"]),
    help="Judge warm-up ages as of this date (default: today in each tenant's time zone).",
)
@_FORMAT
@_TENANT
def lint(path: Path | None, strict: bool, today: datetime | None, fmt: str, only: tuple[str, ...]) -> None:
    """Risk rules on valid tenant YAML: warnings, or errors with --strict.

    Rules: human-delay-floor, optout-keywords, warmup-ramp, new-contacts-per-day, quiet-hours-short,
    window-in-quiet-hours (docs/configuration.md#lint-rules). Invalid YAML fails as in `mirage validate`.
    """
    from mirage.config.lint import lint_tenant
    from mirage.engine.calendar import local_date

    fleet = _load(path, only, fmt)
    now = datetime.now(UTC)
    problems: list[Problem] = []
    for slug, tenant in fleet.tenants.items():
        day: date = today.date() if today else local_date(now, tenant.timezone)
        for issue in lint_tenant(tenant, day, strict=strict):
            file, line, col = fleet.locate(slug, *issue.path, key=issue.key)
            problems.append(Problem(file, line, col, issue.message, issue.severity, issue.rule))
    problems.sort(key=lambda p: (p.path, p.line, p.col, p.message))
    errors = sum(p.severity == "error" for p in problems)
    summary = t("config.lint_summary", errors=errors, warnings=len(problems) - errors, n=len(fleet.tenants))
    _emit(problems, fmt, summary)
    if errors:
        raise SystemExit(1)


@cli.group()
def schema() -> None:
    """JSON Schemas of the tenant YAML files, generated from the models (editor completion, CI)."""


@schema.command("export")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("schemas"),
    show_default=True,
    help="Folder the *.schema.json files are written to.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when a file in --out is missing or stale.")
def export(out: Path, check: bool) -> None:
    """Write schemas/<kind>.schema.json for tenant, numbers, personas, conversation, contacts and outreach.

    Each example YAML file starts with `# yaml-language-server: $schema=...` pointing at one of them.
    """
    from mirage.config.jsonschema import render_all

    files = render_all()
    if check:
        stale = [n for n, text in files.items() if _read(out / n) != text]
        for name in stale:
            click.echo(t("config.schema_stale", path=out / name), err=True)
        if stale:
            raise SystemExit(1)
        click.echo(t("config.schema_current", n=len(files)))
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        if _read(out / name) != text:
            (out / name).write_text(text, encoding="utf-8")
            click.echo(t("config.schema_written", path=out / name))
    click.echo(t("config.schema_current", n=len(files)))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None
