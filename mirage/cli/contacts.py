"""`mirage contacts forget`: erase a contact's personal data (LGPD) and keep the opt-out by hash (ADR 0036)."""

from __future__ import annotations

import click

from mirage.cli.base import cli
from mirage.db.connect import connect
from mirage.db.contacts import e164, forget
from mirage.db.optouts import tenant_id_of
from mirage.db.sessions import service_session
from mirage.i18n import t


@cli.group()
def contacts() -> None:
    """A tenant's contacts (people): erasing one on request (LGPD)."""


@contacts.command(name="forget")
@click.argument("tenant")
@click.argument("number")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def forget_command(tenant: str, number: str, yes: bool) -> None:
    """Erase NUMBER's personal data in TENANT and keep only a hash so it is never messaged again.

    In one transaction: message bodies, addresses and push names of every message with the contact, raw webhook
    payloads that carry the number, review texts and outreach scripts are erased; the contact row goes (with its
    targets, pairings and participations); the opt-out stays, under sha256(tenant, number) only, and is recorded
    if the contact had not opted out. Cannot be undone. Remove the contact from tenants.d/ too: otherwise the next
    apply adds it back (still opted out).
    """
    from mirage.jobs.runtime import clock

    n = e164(number)
    if not yes:
        click.confirm(t("contacts.forget_confirm", number=n, tenant=tenant), abort=True)
    with connect() as conn, service_session(conn) as c:
        done = forget(c, tenant_id_of(c, tenant), n, clock().now())
    click.echo(t("contacts.forgotten", number=n, tenant=tenant, messages=done.messages, events=done.events))
    if done.optout_created:
        click.echo(t("contacts.optout_recorded"))
    if done.contact:
        click.echo(t("contacts.remove_from_yaml", tenant=tenant), err=True)
