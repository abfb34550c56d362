"""QR codes like Baileys': a `2@…,…,…,…` ref string rendered as a real PNG data URL (segno), plus pairing codes."""

from __future__ import annotations

import base64
import random

import segno

_PAIRING_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ123456789"


def _b64(rng: random.Random, n: int) -> str:
    return base64.b64encode(bytes(rng.getrandbits(8) for _ in range(n))).decode()


def qr_string(rng: random.Random) -> str:
    """A Baileys-shaped QR payload: `2@<ref>,<noise key>,<identity key>,<adv secret>`."""
    return f"2@{_b64(rng, 48)},{_b64(rng, 32)},{_b64(rng, 32)},{_b64(rng, 32)}"


def png_data_url(code: str) -> str:
    """`data:image/png;base64,…` of the QR for `code`, as `qrcode.toDataURL` produces."""
    return str(segno.make(code, error="l", micro=False).png_data_uri(scale=4, border=4))


def pairing_code(rng: random.Random) -> str:
    """An 8-character pairing code (`WZYEH1YY`)."""
    return "".join(rng.choices(_PAIRING_ALPHABET, k=8))
