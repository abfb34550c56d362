"""`mirage db`: apply and inspect the migrations in supabase/migrations, refresh the metrics views."""

from __future__ import annotations

import json
from pathlib import Path

import click
import psycopg

from mirage.cli.base import cli
from mirage.db.connect import connect
from mirage.db.migrate import Migration, MigrationStatus, migrate, status
from mirage.db.sessions import service_session
from mirage.errors import ServiceError
from mirage.i18n import t

_DIR_OPTION = click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder of the migration files [default: supabase/migrations of this checkout, else the installed copy].",
)


@cli.group()
def db() -> None:
    """Database: apply migrations (schema, row level security, access token hook, metrics views) and inspect them.

    Uses DATABASE_URL, or the embedded Postgres of the state folder when it is unset.
    """


@db.command(name="migrate")
@_DIR_OPTION
def migrate_command(folder: Path | None) -> None:
    """Apply pending migrations in order, each in its own transaction, printing each file and its time.

    Refuses, applying nothing, when a migration that was already applied has been edited since.
    """

    def progress(m: Migration, seconds: float) -> None:
        click.echo(t("db.applied_one", name=m.name, ms=round(seconds * 1000)))

    with connect() as conn:
        done = migrate(conn, folder, progress=progress)
        st = status(conn, folder)
    if done:
        click.echo(t("db.applied_total", n=len(done)))
    else:
        click.echo(t("db.up_to_date", n=len(st.applied)))


@db.command(name="status")
@_DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the status as a JSON document.")
def status_command(folder: Path | None, as_json: bool) -> None:
    """List applied, pending, edited and missing migrations; exits 1 when an applied file was edited."""
    with connect() as conn:
        st = status(conn, folder)
    rows = _rows(st)
    if as_json:
        click.echo(json.dumps({"migrations": [{"name": n, "state": s} for n, s in rows], "current": st.current}))
    else:
        colours = {"applied": "green", "pending": "yellow", "edited": "red", "missing": "yellow"}
        for name, state in rows:
            label = f"{t('db.state_' + state):<9}"
            click.echo(f"{click.style(label, fg=colours[state])} {name}")
        click.echo(
            t(
                "db.status_summary",
                applied=len(st.applied),
                pending=len(st.pending),
                edited=len(st.edited),
                missing=len(st.missing),
            )
        )
        if st.edited:
            click.echo(t("db.edited_hint"), err=True)
    if st.edited:
        raise SystemExit(1)


@db.command(name="refresh-metrics")
def refresh_metrics_command() -> None:
    """Refresh the metrics materialized views (mv_stats_messages, mv_number_stats) concurrently.

    On Supabase pg_cron does this on a schedule (docs/database.md); this runs it once, as service_role.
    """
    try:
        with connect() as conn, service_session(conn) as c:
            timings = c.execute("select view_name, duration_ms from public.refresh_metrics()").fetchall()
    except psycopg.Error as e:
        raise ServiceError("postgres", f"refresh failed: {str(e).strip().splitlines()[0]}") from e
    for row in timings:
        click.echo(t("db.refreshed", view=row["view_name"], ms=row["duration_ms"]))


def _rows(st: MigrationStatus) -> list[tuple[str, str]]:
    """(name, state) for every migration known to the folder or the ledger, in name order."""
    states = {name: "applied" for name in st.applied}
    states.update({m.name: "pending" for m in st.pending})
    states.update({name: "edited" for name in st.edited})
    states.update({name: "missing" for name in st.missing})
    return sorted(states.items())
