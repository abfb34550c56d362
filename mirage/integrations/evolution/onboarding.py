"""Following an instance's QRs until the phone links (`mirage connect`): the HTTP loop, nothing stored.

Evolution shows a new QR about every 45 s and gives up after ~30 (QRCODE_LIMIT): the state goes `refused`
for a moment and then `close`. Polling `connect` on a connecting instance starts nothing new, it returns the QR
being shown, so `follow` polls `connect` + `connectionState` every `poll_s` and yields each new QR, then one
final step (`Linked`, `GaveUp` or `TimedOut`). `mirage.jobs.lifecycle.link` stores what it yields.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from mirage.integrations.evolution.client import EvolutionClient
from mirage.integrations.evolution.models import ConnectResult, QrCode


@dataclass(frozen=True)
class Shown:
    """A new QR to show (and to keep, encrypted, while it can be scanned)."""

    qr: QrCode


@dataclass(frozen=True)
class Linked:
    """The phone scanned a QR: the instance is `open`."""

    count: int
    phone: str | None
    instance_id: str | None


@dataclass(frozen=True)
class GaveUp:
    """Evolution hit its QR limit (`refused`)."""

    count: int


@dataclass(frozen=True)
class TimedOut:
    """Nobody scanned before the deadline."""

    count: int


Step = Shown | Linked | GaveUp | TimedOut


def follow(
    client: EvolutionClient,
    name: str,
    token: str | None,
    *,
    pairing_number: str | None,
    timeout_s: float,
    poll_s: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> Iterator[Step]:
    """Yield each new QR of instance `name`, then one final step; the caller stops at the final step."""
    deadline = clock() + timeout_s
    shown: str | None = None
    count = 0
    seen_connecting = False
    answer: ConnectResult | None = client.connect(name, token=token, number=pairing_number)
    while True:
        if answer is not None:
            if answer.state == "open":
                yield _linked(client, name, token, count)
                return
            if answer.state == "refused" or (answer.qr is not None and answer.qr.count < count):
                yield GaveUp(count)  # a lower count: a new series, the last one ran out
                return
            if answer.qr is not None and answer.qr.code != shown:
                shown, count = answer.qr.code, answer.qr.count
                yield Shown(answer.qr)
        if clock() >= deadline:
            yield TimedOut(count)
            return
        sleep(poll_s)
        state = client.connection_state(name, token=token)
        answer = None
        if state == "open":
            yield _linked(client, name, token, count)
            return
        if state == "connecting":
            seen_connecting = True
            # On a connecting instance connect starts nothing: it returns the QR on screen. Asking only after
            # seeing `connecting` keeps this loop from starting a new series right after Evolution gave up.
            answer = client.connect(name, token=token, number=pairing_number)
        elif state == "refused" or seen_connecting or shown is not None:
            # Evolution hit its QR limit: `refused` briefly, then `close`. Connecting again would start a new
            # series nobody is looking at, so stop and let the operator retry.
            yield GaveUp(count)
            return
        else:
            answer = client.connect(name, token=token, number=pairing_number)  # close, nothing shown yet: start


def _linked(client: EvolutionClient, name: str, token: str | None, count: int) -> Linked:
    rows = client.fetch_instances(instance_name=name, token=token)
    info = next((r for r in rows if r.name == name), None)
    return Linked(count, info.phone if info else None, info.instance_id if info else None)
