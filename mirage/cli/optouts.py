"""`mirage optouts review` / `export` / `add`: a tenant's opt-outs and the replies that might be one (ADR 0036)."""

from __future__ import annotations

from datetime import datetime
from typing import IO

import click

from mirage.cli.base import cli
from mirage.db import optouts as db_optouts
from mirage.db.connect import connect
from mirage.db.contacts import e164
from mirage.db.sessions import service_session
from mirage.i18n import t


def _now() -> datetime:
    from mirage.jobs.runtime import clock  # the one clock (MIRAGE_CLOCK); loaded only by these commands

    return clock().now()


def _actor() -> str:
    from mirage.reconcile.apply import current_actor

    return current_actor()


@cli.group()
def optouts() -> None:
    """Opt-outs: review replies that might be one, export the list (CSV), record one by hand."""


@optouts.command(name="review")
@click.argument("tenant")
@click.option("--confirm", "confirm", multiple=True, metavar="ID", help="Confirm this review as an opt-out (repeat).")
@click.option("--clear", "clear", multiple=True, metavar="ID", help="Clear this review: not an opt-out (repeat).")
def review_command(tenant: str, confirm: tuple[str, ...], clear: tuple[str, ...]) -> None:
    """List TENANT's replies that might be opt-outs, or decide them.

    A reply like a lone "não" or "para com isso kkk" pauses the contact at once: nothing is sent to it until a
    person decides. Without options this lists the pending reviews, oldest first, with the message. --confirm ID
    records the opt-out for good; --clear ID resumes the contact's outreach where it was. ID is the listed id (or
    any unique prefix of it).
    """
    now = _now()
    with connect() as conn, service_session(conn) as c:
        tenant_id = db_optouts.tenant_id_of(c, tenant)
        if not confirm and not clear:
            rows = db_optouts.pending_reviews(c, tenant_id)
        else:
            for rid in confirm:
                s = db_optouts.decide_review(c, tenant_id, rid, optout=True, by=_actor(), now=now)
                click.echo(t("optouts.confirmed", id=rid, cancelled=s.cancelled, targets=s.targets))
            for rid in clear:
                s = db_optouts.decide_review(c, tenant_id, rid, optout=False, by=_actor(), now=now)
                click.echo(t("optouts.cleared", id=rid, targets=s.targets))
            return
    if not rows:
        click.echo(t("optouts.none_pending", tenant=tenant))
        return
    for r in rows:
        who = r["wa_number"] or t("optouts.forgotten")
        if r["display_name"]:
            who = f"{who} ({r['display_name']})"
        click.echo(f"{r['id'][:8]}  {r['created_at']:%Y-%m-%d %H:%M} UTC  {who}")
        click.echo(f"          {t('optouts.matched')}: {r['phrase']!r}  {t('optouts.message')}: {r['body']!r}")
    click.echo(t("optouts.review_hint", tenant=tenant), err=True)


@optouts.command(name="export")
@click.argument("tenant")
@click.option("-o", "--output", type=click.File("w"), default="-", help="Write the CSV here [default: stdout].")
def export_command(tenant: str, output: IO[str]) -> None:
    """Every opt-out of TENANT as CSV: when, number (empty once forgotten), hash, source, keyword, message."""
    with connect() as conn, service_session(conn) as c:
        text = db_optouts.export_csv(c, db_optouts.tenant_id_of(c, tenant))
    output.write(text)


@optouts.command(name="add")
@click.argument("tenant")
@click.argument("number")
def add_command(tenant: str, number: str) -> None:
    """Opt NUMBER (E.164, +55…) out of every message from TENANT, for good (e.g. asked by phone or e-mail)."""
    n = e164(number)
    with connect() as conn, service_session(conn) as c:
        s = db_optouts.record_optout(c, db_optouts.tenant_id_of(c, tenant), n, _now(), keyword=None, source="manual")
    key = "optouts.added" if s.created else "optouts.already"
    click.echo(t(key, number=n, tenant=tenant, cancelled=s.cancelled, targets=s.targets))
