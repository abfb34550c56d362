"""`mirage viewers link` / `mirage viewers revoke`: sign-in links to the metrics page for a tenant's members."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click

from mirage.cli.base import cli
from mirage.db.connect import connect
from mirage.db.sessions import service_session
from mirage.db.viewers import create_link, revoke
from mirage.i18n import t
from mirage.settings import get_settings

_TTL = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_TTL = timedelta(days=90)


def parse_ttl(value: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w` -> a timedelta between one minute and 90 days."""
    m = _TTL.match(value)
    if not m or int(m.group(1)) == 0:
        raise click.BadParameter(f"{value!r}: use a number and a unit, like 30d, 12h, 90m or 2w")
    ttl = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    if ttl > MAX_TTL:
        raise click.BadParameter(f"{value!r}: at most 90d")
    return ttl


@cli.group()
def viewers() -> None:
    """Sign-in links to the read-only metrics page for the members and viewers listed in tenant.yaml."""


@viewers.command(name="link")
@click.argument("tenant")
@click.argument("email")
@click.option(
    "--ttl", default="30d", show_default=True, help="How long the link stays valid (m, h, d or w; at most 90d)."
)
@click.option("--url", "base_url", help="Base URL of the page [default: MIRAGE_PUBLIC_URL].")
def link_command(tenant: str, email: str, ttl: str, base_url: str | None) -> None:
    """Print a sign-in link for EMAIL, a member or viewer of TENANT (slug).

    The link holds a random token after `#`, which browsers never send to a server; the database keeps only
    its SHA-256. It expires after --ttl and `mirage viewers revoke` ends it (and the sessions it opened) at once.
    """
    from mirage.reconcile.apply import current_actor

    now = datetime.now(UTC)
    with connect() as conn, service_session(conn) as c:
        link = create_link(c, tenant, email, parse_ttl(ttl), created_by=current_actor(), now=now)
    base = (base_url or get_settings().public_url).rstrip("/")
    click.echo(
        t("viewers.link_created", email=email.lower(), tenant=tenant, expires=f"{link.expires_at:%Y-%m-%d %H:%M} UTC")
    )
    click.echo(f"{base}/signin#{link.token}")
    click.echo(t("viewers.link_note"), err=True)


@viewers.command(name="revoke")
@click.argument("tenant")
@click.argument("email")
def revoke_command(tenant: str, email: str) -> None:
    """Revoke every sign-in link of EMAIL in TENANT and end their open sessions at once."""
    with connect() as conn, service_session(conn) as c:
        links, sessions = revoke(c, tenant, email, now=datetime.now(UTC))
    click.echo(t("viewers.revoked", links=links, sessions=sessions, email=email.lower(), tenant=tenant))
