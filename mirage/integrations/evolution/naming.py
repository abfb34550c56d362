"""Evolution instance names: `mirage-<tenant>-<number key>`, made URL-safe and shortened with a hash when needed."""

from __future__ import annotations

import hashlib
import re

MAX_LENGTH = 48  # short enough for URLs, logs and Evolution's Manager UI
_UNSAFE = re.compile(r"[^a-z0-9-]+")


def instance_name(tenant_slug: str, number_key: str) -> str:
    """The instance name for a number; stable for the life of its session (it is stored in t_sessions).

    Names are global to an Evolution server, so they carry the tenant. Anything outside `[a-z0-9-]` is
    replaced, and a name that had to be changed or cut gets an 8-hex digest of the original so two
    different numbers never map to the same instance.
    """
    raw = f"mirage-{tenant_slug}-{number_key}"
    clean = re.sub("-{2,}", "-", _UNSAFE.sub("-", raw.lower())).strip("-")
    if clean == raw and len(clean) <= MAX_LENGTH:
        return clean
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]
    return f"{clean[: MAX_LENGTH - 9].rstrip('-')}-{digest}"
