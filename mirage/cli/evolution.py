"""`mirage connect TENANT/NUMBER` (link a number by QR) and `mirage sim evolution` (the local Evolution API)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import click
import segno

from mirage.cli.base import cli
from mirage.db import evolution_sessions as store
from mirage.db.connect import connect as db_connect
from mirage.errors import MirageError
from mirage.i18n import t
from mirage.integrations.evolution.models import QrCode
from mirage.jobs.lifecycle import link


class LinkAborted(MirageError):
    """`mirage connect` ended without a linked phone: timeout (exit 1) or Evolution's QR limit (exit 2)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _split_target(target: str) -> tuple[str, str]:
    tenant, sep, number = target.partition("/")
    if not sep or not tenant or not number or "/" in number:
        raise click.BadParameter(t("evolution.bad_target", target=target), param_hint="TENANT/NUMBER")
    return tenant, number


def render_qr(qr: QrCode) -> str:
    """The QR drawn with half-block characters, for a terminal."""
    buf = io.StringIO()
    segno.make(qr.code, error="l", micro=False).terminal(out=buf, compact=True)
    return buf.getvalue()


def save_png(qr: QrCode, path: Path) -> None:
    """Evolution's own PNG when it decodes, else one drawn from the QR string; readable by the owner only
    (whoever scans it owns the WhatsApp session)."""
    data = qr.png()
    if not data.startswith(b"\x89PNG"):
        buf = io.BytesIO()
        segno.make(qr.code, error="l", micro=False).save(buf, kind="png", scale=8, border=4)
        data = buf.getvalue()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_TRUNC


@cli.command("connect")
@click.argument("target", metavar="TENANT/NUMBER")
@click.option(
    "--png",
    "png_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also save each QR as a PNG image at this path (overwritten when the QR changes).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    help="Give up after this many seconds without a scan (the instance keeps its session).",
)
@click.option(
    "--pairing-code",
    is_flag=True,
    help="Also ask Evolution for an 8-character pairing code for the declared number "
    "(WhatsApp > Linked devices > Link with phone number instead).",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.05),
    default=2.0,
    show_default=True,
    help="Seconds between checks with Evolution for a new QR or the connection state.",
)
def connect_command(target: str, png_path: Path | None, timeout: float, pairing_code: bool, poll: float) -> None:
    """Link a declared number to WhatsApp: show its QR until the phone scans it and the state is `open`.

    Creates the Evolution instance first if `mirage apply` has not yet. A new QR comes about every 45 s;
    after about 30 Evolution gives up (exit 2: run the command again). Exit 1 on --timeout.
    """
    tenant, key = _split_target(target)
    with db_connect() as conn:
        number = store.find_number(conn, tenant, key)
        if number is None:
            raise MirageError(t("evolution.unknown_number", target=target, tenant=tenant))
        click.echo(t("evolution.connect_start", target=number.target, phone=number.wa_number))

        def show(qr: QrCode) -> None:
            click.clear()
            click.echo(render_qr(qr))
            click.echo(t("evolution.qr_caption", phone=number.wa_number, count=qr.count))
            if qr.pairing_code:
                click.echo(t("evolution.pairing_code", code=qr.pairing_code))
            if png_path is not None:
                save_png(qr, png_path)
                click.echo(t("evolution.png_saved", path=str(png_path)))

        result = link(conn, number, timeout_s=timeout, poll_s=poll, pairing=pairing_code, on_qr=show)
    if result.state == "open":
        click.echo(t("evolution.connected", target=number.target, phone=result.phone or "?"))
        if result.phone and result.phone != number.wa_number:
            click.echo(t("evolution.other_phone", phone=result.phone, declared=number.wa_number), err=True)
        return
    if result.state == "refused":
        raise LinkAborted(t("evolution.refused", count=result.qr_count, target=number.target), 2)
    raise LinkAborted(t("evolution.timeout", seconds=int(timeout), target=number.target), 1)


@cli.group()
def sim() -> None:
    """Local simulators of outside services, for the demo and the tests."""


@sim.command("evolution")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it loopback).")
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True, help="Port to listen on.")
@click.option(
    "--api-key",
    envvar="EVOLUTION_API_KEY",
    show_envvar=True,
    default="mirage-sim-global-key",
    help="The global apikey (Evolution's AUTHENTICATION_API_KEY).",
)
@click.option(
    "--time-factor",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Scale request delays, human replies, acks and webhook retry backoff (0.01 = 100x faster).",
)
@click.option("--qr-interval", type=click.FloatRange(min=0.01), default=45.0, show_default=True, help="Seconds per QR.")
@click.option("--qr-limit", type=click.IntRange(min=1), default=30, show_default=True, help="QRs before `refused`.")
@click.option(
    "--scan-after",
    type=click.FloatRange(min=0),
    default=None,
    help="Scan each QR automatically after this many seconds (default: only POST /sim/instances/NAME/scan).",
)
@click.option(
    "--expose-token",
    is_flag=True,
    help="Put the instance token in each webhook's `apikey` (EXPOSE_IN_FETCH_INSTANCES).",
)
@click.option(
    "--reply-probability",
    type=click.FloatRange(0, 1),
    default=0.85,
    show_default=True,
    help="Probability a simulated person answers.",
)
@click.option(
    "--optout-probability",
    type=click.FloatRange(0, 1),
    default=0.05,
    show_default=True,
    help="Probability an answer is an opt-out word (SAIR, PARAR, STOP).",
)
@click.option(
    "--lid-probability",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Probability a person's chat is @lid-addressed.",
)
@click.option("--chaos-duplicates", type=click.FloatRange(0, 1), default=0.0, help="Rate of duplicated webhooks.")
@click.option(
    "--chaos-reorder", type=click.FloatRange(0, 1), default=0.0, help="Rate of webhooks held back (reordered)."
)
@click.option("--chaos-errors", type=click.FloatRange(0, 1), default=0.0, help="Rate of REST calls answering 500.")
@click.option("--chaos-timeouts", type=click.FloatRange(0, 1), default=0.0, help="Rate of REST calls hanging 30 s.")
@click.option("--seed", type=int, default=None, help="Random seed, for repeatable runs.")
def sim_evolution(
    host: str,
    port: int,
    api_key: str,
    time_factor: float,
    qr_interval: float,
    qr_limit: int,
    scan_after: float | None,
    expose_token: bool,
    reply_probability: float,
    optout_probability: float,
    lid_probability: float,
    chaos_duplicates: float,
    chaos_reorder: float,
    chaos_errors: float,
    chaos_timeouts: float,
    seed: int | None,
) -> None:
    """Run the Evolution API v2.3.6 simulator (routes, webhooks, QRs, simulated people; see docs/evolution.md)."""
    import uvicorn

    from mirage.integrations.evolution_sim import ChaosConfig, HumanConfig, SimConfig, create_sim_app

    config = SimConfig(
        api_key=api_key,
        server_url=f"http://{host}:{port}",
        time_factor=time_factor,
        qr_interval_s=qr_interval,
        qr_limit=qr_limit,
        scan_after_s=scan_after,
        expose_token=expose_token,
        human=HumanConfig(
            reply_probability=reply_probability,
            optout_probability=optout_probability,
            lid_probability=lid_probability,
        ),
        chaos=ChaosConfig(
            duplicate_rate=chaos_duplicates,
            reorder_rate=chaos_reorder,
            error_rate=chaos_errors,
            timeout_rate=chaos_timeouts,
        ),
        seed=seed,
    )
    click.echo(
        t("evolution.sim_listening", version=config.version, url=config.server_url, qr=qr_interval, factor=time_factor)
    )
    uvicorn.run(create_sim_app(config), host=host, port=port, log_level="warning", ws="none")
