"""`mirage numbers resume TENANT/NUMBER`: give a paused number back to the runtime once it is open again."""

from __future__ import annotations

import click

from mirage.cli.base import cli
from mirage.errors import MirageError
from mirage.i18n import t


@cli.group()
def numbers() -> None:
    """Number health: resume a number the runtime paused (a ban-like disconnect, sends failing in a row)."""


@numbers.command(name="resume")
@click.argument("target", metavar="TENANT/NUMBER")
def resume_command(target: str) -> None:
    """Resume TENANT/NUMBER (tenant slug / number key), paused by the runtime, if its connection is open again.

    A number is paused when its connection closed with a ban-like reason (401, 403, 463, refused) or several
    sends in a row failed; its rounds were aborted and it starts none until an operator resumes it. `mirage
    status TENANT` lists paused numbers with the reason. A number not `open` stays paused (exit 1): connect
    it again first (`mirage connect TENANT/NUMBER`).
    """
    from mirage.jobs.health import resume

    slug, _, key = target.partition("/")
    if not slug or not key or "/" in key:
        raise MirageError(t("numbers.bad_target", target=target))
    outcome = resume(slug, key)
    if outcome == "unknown":
        raise MirageError(t("numbers.unknown", target=target))
    if outcome.startswith("still "):
        raise MirageError(t("numbers.still_down", number=target, status=outcome.removeprefix("still "), target=target))
    click.echo(t("numbers.resumed" if outcome == "resumed" else "numbers.not_paused", number=target))
