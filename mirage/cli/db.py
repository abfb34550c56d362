"""`mirage db`: apply and inspect the migrations, refresh the metrics views, back up and restore the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from mirage.cli.base import cli
from mirage.db.connect import connect
from mirage.db.migrate import Migration, MigrationStatus, migrate, status
from mirage.i18n import t

_DIR_OPTION = click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder of the migration files [default: supabase/migrations of this checkout, else the installed copy].",
)


@cli.group()
def db() -> None:
    """Database: apply migrations (schema, row level security, access token hook, metrics views) and inspect them;
    back the database up and restore it.

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
    from mirage.db.maintenance import refresh_metrics

    with connect() as conn:
        timings = refresh_metrics(conn)
    for view, ms in timings.items():
        click.echo(t("db.refreshed", view=view, ms=ms))


@db.command(name="backup")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def backup_command(file: Path | None) -> None:
    """Dump the database (DATABASE_URL, or the embedded one) to FILE with pg_dump's custom format.

    FILE defaults to mirage-<database>-<UTC time>.dump in the current folder; it is written owner-only and
    appears only when the dump is complete. Restore it with `mirage db restore`. On Supabase use PITR and
    scheduled dumps as well (README, "Backups").
    """
    from mirage.backends import postgres_backend
    from mirage.db.backup import backup, database_name

    pg = postgres_backend()
    if file is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        file = Path(f"mirage-{database_name(pg.url)}-{stamp}.dump")
    result = backup(pg.url, file, embedded=pg.embedded)
    click.echo(t("db.backup_done", path=result.path, kb=max(1, result.bytes // 1024), seconds=f"{result.seconds:.1f}"))


@db.command(name="restore")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--database",
    "new_database",
    help="Create this new database on the same server and restore into it (a drill that leaves production alone).",
)
def restore_command(file: Path, new_database: str | None) -> None:
    """Restore a `mirage db backup` FILE in one transaction, into an empty database.

    Without --database the target is DATABASE_URL (or the embedded database), which must hold no Mirage tables.
    Afterwards point DATABASE_URL at the restored database and run `mirage db status` and `mirage plan`.
    """
    from mirage.backends import mask_url, postgres_backend
    from mirage.db.backup import create_database, restore

    pg = postgres_backend()
    url = create_database(pg.url, new_database) if new_database else pg.url
    result = restore(url, file, embedded=pg.embedded)
    click.echo(
        t(
            "db.restore_done",
            path=file,
            database=result.database,
            seconds=f"{result.seconds:.1f}",
            migrations=result.migrations,
            tenants=result.tenants,
            messages=result.messages,
        )
    )
    if new_database:
        click.echo(t("db.restore_url", url=mask_url(url)))


def _rows(st: MigrationStatus) -> list[tuple[str, str]]:
    """(name, state) for every migration known to the folder or the ledger, in name order."""
    states = {name: "applied" for name in st.applied}
    states.update({m.name: "pending" for m in st.pending})
    states.update({name: "edited" for name in st.edited})
    states.update({name: "missing" for name in st.missing})
    return sorted(states.items())
