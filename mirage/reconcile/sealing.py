"""Secret fingerprints and seals (pure hashing): how a plan notices a changed secret without holding it.

The diff fingerprints each secret value (`fingerprint`); the shell, which holds MIRAGE_SECRET_KEYS, passes
the diff a `Sealer` (`partial(seal_secret, key)`) that keys the fingerprint for the plan file. Nothing here
reads keys, settings or the environment.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

Sealer = Callable[[str], str]
"""Keys a secret's fingerprint for the plan (the shell binds a MIRAGE_SECRET_KEYS key: `partial(seal_secret, key)`)."""


def fingerprint(*parts: object) -> str:
    """A salted sha256 that shows a secret changed without revealing it (salt: tenant id and name)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(str(p).encode("utf-8"))
        h.update(b"\x1f")
    return "sha256:" + h.hexdigest()[:32]


def seal_secret(key: str, fingerprint: str) -> str:
    """A secret's fingerprint keyed with a MIRAGE_SECRET_KEYS key: apply can tell the secret changed since the plan.

    A bare fingerprint would confirm guesses of the secret to anyone holding the plan file (its salt, the tenant
    id and the secret's name, is in the plan); without the key, a seal confirms nothing.
    """
    mac_key = hashlib.sha256(b"mirage plan seal\x1f" + key.encode("utf-8")).digest()
    return "hmac-sha256:" + hmac.new(mac_key, fingerprint.encode("utf-8"), hashlib.sha256).hexdigest()[:32]
