"""`mirage up` / `mirage down`: start or stop the embedded Postgres and Redis of the state folder."""

from __future__ import annotations

import click

from mirage.backends import forget_embedded, postgres_backend, redis_backend
from mirage.cli.base import cli
from mirage.embedded import stop_postgres, stop_redis
from mirage.i18n import t
from mirage.settings import get_settings


@cli.command()
def up() -> None:
    """Start the embedded Postgres and Redis (when DATABASE_URL / REDIS_URL are unset) and print their URLs."""
    s = get_settings()
    for name, backend in (("postgres", postgres_backend(s)), ("redis", redis_backend(s))):
        kind = t("doctor.embedded") if backend.embedded else t("services.external")
        click.echo(f"{name:<9} {kind}: {backend.masked}")


@cli.command()
def down() -> None:
    """Stop the embedded Postgres and Redis of the state folder cleanly; their data stays on disk."""
    s = get_settings()
    state = s.state_dir
    for name, configured, stop in (
        ("postgres", s.database_url is not None, stop_postgres),
        ("redis", s.redis_url is not None, stop_redis),
    ):
        if configured:
            click.echo(f"{name:<9} {t('services.not_embedded')}")
        elif stop(state):
            click.echo(f"{name:<9} {t('services.stopped', path=state.resolve())}")
        else:
            click.echo(f"{name:<9} {t('services.not_running')}")
    forget_embedded()
