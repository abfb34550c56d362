"""`mirage plan`, `mirage apply` and `mirage import`: the GitOps loop (docs/gitops.md)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mirage.cli.base import cli
from mirage.errors import MirageError, PolicyError
from mirage.i18n import t
from mirage.settings import get_settings

if TYPE_CHECKING:
    from mirage.reconcile.effects import Effect
    from mirage.reconcile.resources import DesiredState
    from mirage.reconcile.sync import RuntimeDrift

FORMATS = ("text", "json", "markdown")
_COMPACT = click.option(
    "--compact", is_flag=True, help="Text plan with one line per change (updates name their fields, not values)."
)
_STRICT = click.option(
    "--strict", is_flag=True, help="Lint findings (`mirage lint`) block too: printed, exit 3, nothing applied."
)


def stdin_is_tty() -> bool:
    """Whether there is a person to ask (tests replace this; CliRunner's stdin is never a terminal)."""
    return sys.stdin.isatty()


def _path(path: Path | None) -> Path:
    return path if path is not None else get_settings().tenants_dir


def _tenants(path: Path, tenants: tuple[str, ...]) -> list[str] | None:
    """--tenant values; a PATH that is itself one tenant folder selects that tenant."""
    if (path / "tenant.yaml").is_file():
        return [path.resolve().name]
    return list(tenants) or None


def _scope_of(desired: DesiredState) -> list[str] | None:
    return None if desired.scope is None else sorted(set(desired.tenants) | set(desired.scope))


def drift_text(drift: RuntimeDrift) -> str:
    """`Runtime: 3 numbers waiting for provisioning, ...` and how it gets fixed."""
    parts = [t(f"plan.drift_{kind}" + ("_one" if n == 1 else ""), n=n) for kind, n in drift.counts().items() if n]
    return t("plan.runtime_drift", parts=", ".join(parts))


@cli.command()
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--tenant",
    "-t",
    "tenants",
    multiple=True,
    metavar="SLUG",
    help="Plan only this tenant (repeatable). Default: every tenant; one only in the database is a deletion.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for terminals, markdown for pull-request comments, json for tools (docs/plan-format.md).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also save the plan as JSON here, for `mirage apply --plan FILE`.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there are no changes and 2 when there are (1 error, 3 blocked by policy).",
)
@click.option("--allow-delete", is_flag=True, help="Deletions are allowed (otherwise they are shown and exit 3).")
@click.option("--color/--no-color", default=None, help="Colour the text plan [default: only on a terminal].")
@_COMPACT
@_STRICT
def plan(
    path: Path | None,
    tenants: tuple[str, ...],
    fmt: str,
    out: Path | None,
    detailed_exitcode: bool,
    allow_delete: bool,
    color: bool | None,
    compact: bool,
    strict: bool,
) -> None:
    """Show what `mirage apply` would change: + create, ~ update, - delete, per tenant.

    Reads the tenant YAML under PATH (default tenants.d) and the rows in Postgres, and prints the
    difference. Secrets show as (sensitive). Exit codes: 0 ok, 1 error, 3 blocked by policy (deletions
    without --allow-delete, lint findings under --strict); with --detailed-exitcode, 0 means no changes
    and 2 means changes.
    """
    from mirage.db.connect import connect
    from mirage.reconcile.render import RENDERERS
    from mirage.reconcile.service import lint_problems, load, make_plan

    root = _path(path)
    fleet, desired = load(root, _tenants(root, tenants))
    findings = lint_problems(fleet) if strict else []
    from mirage.jobs.sync import drift_of

    with connect() as conn:
        p = make_plan(conn, desired)
        drift = drift_of(conn, _scope_of(desired))
    if out is not None:
        out.write_text(p.to_json(), encoding="utf-8")
        click.echo(t("plan.plan_saved", path=out, hash=p.plan_hash), err=True)
    kwargs: dict[str, bool] = {} if fmt == "json" else {"allow_delete": allow_delete}
    paint = sys.stdout.isatty() if color is None else color
    if fmt == "text":
        kwargs["color"] = paint
        kwargs["compact"] = compact
    click.echo(RENDERERS[fmt](p, **kwargs), nl=False, color=paint if fmt == "text" else None)
    if not drift.empty:  # stdout stays the plan document alone (docs/plan-format.md): the runtime goes to stderr
        click.echo(drift_text(drift), err=True)
    ctx = click.get_current_context()
    for problem in findings:
        click.echo(str(problem), err=True)
    if p.blocked(allow_delete) or findings:
        ctx.exit(3)
    if detailed_exitcode and not p.empty:
        ctx.exit(2)


@cli.command()
@click.argument("path", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--tenant", "-t", "tenants", multiple=True, metavar="SLUG", help="Apply only this tenant (repeatable).")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Apply exactly this saved plan (`mirage plan --out`); refused if the YAML or database changed.",
)
@click.option("--allow-delete", is_flag=True, help="Allow the plan's deletions (else apply refuses them, exit 3).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (needed when there is no terminal).")
@click.option(
    "--lock-timeout",
    type=float,
    default=60.0,
    show_default=True,
    metavar="S",
    help="Seconds to wait for another apply to finish before failing (naming who holds the lock).",
)
@click.option("--watch", is_flag=True, help="Keep running: plan again on every saved change to the YAML.")
@click.option("--auto-approve", is_flag=True, help="With --watch: apply each new plan too (local development).")
@click.option(
    "--debounce",
    type=int,
    default=400,
    show_default=True,
    metavar="MS",
    help="With --watch: wait this long for edits to settle before planning.",
)
@_COMPACT
@_STRICT
def apply(
    path: Path | None,
    tenants: tuple[str, ...],
    plan_file: Path | None,
    allow_delete: bool,
    yes: bool,
    lock_timeout: float,
    watch: bool,
    auto_approve: bool,
    debounce: int,
    compact: bool,
    strict: bool,
) -> None:
    """Make the database match the YAML: shows the plan, asks, then applies it in one transaction.

    Runs pending migrations first. Holds an advisory lock, so concurrent applies take turns; re-reads
    the database under the lock and refuses if it changed since the plan. Afterwards enqueues the
    runtime jobs the change implies (provision new numbers, reschedule changed conversations).
    """
    root = _path(path)
    scope = _tenants(root, tenants)
    if auto_approve and not watch:
        raise MirageError("--auto-approve only makes sense with --watch (use --yes for one apply)")
    if watch:
        from mirage.reconcile.watch import watch as run_watch

        def once() -> None:
            _apply_once(
                root,
                scope,
                None,
                allow_delete=allow_delete,
                confirm=False,
                lock_timeout=lock_timeout,
                strict=strict,
                dry_run=not auto_approve,
                compact=compact,
            )

        click.echo(t("plan.watching", path=root), err=True)
        run_watch(
            root,
            once,
            debounce_ms=debounce,
            on_change=lambda: click.echo(t("plan.watch_change"), err=True),
            on_error=lambda e: click.echo(f"{t('cli.error')}: {e}", err=True),
        )
        return
    _apply_once(
        root,
        scope,
        plan_file,
        allow_delete=allow_delete,
        confirm=not yes,
        lock_timeout=lock_timeout,
        strict=strict,
        compact=compact,
    )


def _apply_once(
    root: Path,
    scope: list[str] | None,
    plan_file: Path | None,
    *,
    allow_delete: bool,
    confirm: bool,
    lock_timeout: float,
    strict: bool = False,
    dry_run: bool = False,
    compact: bool = False,
) -> None:
    """One apply: migrate, plan (or load the saved plan), show it, confirm, apply, enqueue the effects."""
    from mirage.db.connect import connect
    from mirage.db.migrate import migrate
    from mirage.reconcile.apply import apply_plan
    from mirage.reconcile.plan import Plan
    from mirage.reconcile.render import render_text
    from mirage.reconcile.service import lint_problems, load, make_plan

    color = sys.stdout.isatty()
    saved = Plan.from_json(plan_file.read_text(encoding="utf-8")) if plan_file is not None else None
    if saved is not None:
        scope = list(saved.scope) if saved.scope is not None else None
    fleet, desired = load(root, scope)
    if strict and (findings := lint_problems(fleet)):
        for problem in findings:
            click.echo(str(problem), err=True)
        raise PolicyError(t("plan.lint_blocked", n=len(findings)))
    with connect() as conn:
        if not dry_run and (done := migrate(conn)):
            click.echo(t("plan.migrated", n=len(done)), err=True)
        if saved is not None:
            p = saved
            click.echo(t("plan.saved_plan", path=plan_file, hash=p.plan_hash), err=True)
            confirm = False  # a saved plan was reviewed when it was made
        else:
            p = make_plan(conn, desired)
        click.echo(render_text(p, allow_delete=allow_delete, color=color, compact=compact), nl=False)
        if dry_run:
            return
        if p.empty:
            _enqueue_runtime(conn, _scope_of(desired), ())
            return
        if confirm and not p.blocked(allow_delete):
            if not stdin_is_tty():
                raise MirageError(t("plan.no_tty"))
            if click.prompt(t("plan.confirm"), default="", show_default=False).strip().lower() != "yes":
                click.echo(t("plan.cancelled"))
                click.get_current_context().exit(1)
        result = apply_plan(
            p,
            conn,
            desired,
            allow_delete=allow_delete,
            lock_timeout=lock_timeout,
            on_wait=lambda holder: click.echo(t("plan.waiting_lock", holder=holder), err=True),
            enqueue=None,  # enqueued below, with the runtime's catch-up, failing fast when Redis is down
        )
        s = result.summary
        click.echo(t("plan.applied", add=s.add, change=s.change, destroy=s.destroy, apply_id=result.apply_id))
        _enqueue_runtime(conn, _scope_of(desired), result.effects)


def _enqueue_runtime(conn: Any, scope: list[str] | None, effects: Sequence[Effect]) -> None:
    """Enqueue the plan's jobs, then whatever else the runtime owes the applied rows (lost enqueues of an earlier
    apply included); when Redis is unreachable, say how to recover."""
    from mirage.jobs.sync import enqueue_effects, enqueue_runtime_drift

    report = enqueue_effects(effects)
    if effects:
        click.echo(t("plan.enqueued", n=len(report.enqueued), total=len(effects)))
    failed = list(report.failed)
    if not failed:
        drift, more = enqueue_runtime_drift(conn, scope)
        if more.enqueued:
            click.echo(t("plan.drift_enqueued", n=len(more.enqueued), drift=drift_text(drift)))
        failed += more.failed
    if failed:
        jobs = ", ".join(f"{e.job_id} ({err})" for e, err in failed[:3]) + (" ..." if len(failed) > 3 else "")
        raise MirageError(t("plan.effects_failed", n=len(failed), jobs=jobs))


@cli.command("import")
@click.argument("tenant", metavar="TENANT")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the tenant's files into [default: <tenants dir>/<TENANT>].",
)
@click.option("--force", is_flag=True, help="Overwrite files already in the folder.")
def import_(tenant: str, out_dir: Path | None, force: bool) -> None:
    """Write tenant YAML from the rows already in the database (teams that start from a database).

    Secrets cannot be read back as values: they become ${<TENANT>_EVOLUTION_API_KEY}-style
    references; set those variables before the next plan.
    """
    from mirage.db.connect import connect
    from mirage.reconcile.importer import import_tenant

    target = out_dir if out_dir is not None else get_settings().tenants_dir / tenant
    with connect() as conn:
        written = import_tenant(conn, tenant, target, force=force)
    click.echo(t("plan.imported", n=len(written), slug=tenant, path=target))
