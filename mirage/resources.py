"""Files Mirage reads at run time that live outside the package in a checkout: migrations, example tenants, schemas.

In a source checkout they are read where they are edited (`supabase/migrations` is what the Supabase CLI reads
too); a wheel carries copies under `mirage/_bundle/`, made by the build hook in setup.py (ADR 0034).
"""

from __future__ import annotations

from pathlib import Path

from mirage.errors import MirageError

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent
BUNDLE = _PACKAGE / "_bundle"

# name -> folder in a checkout (relative to the repository root); the wheel keeps the same name under _bundle/
SOURCES: dict[str, str] = {
    "migrations": "supabase/migrations",
    "tenants.d": "tenants.d",
    "schemas": "schemas",
}


class ResourceError(MirageError):
    """A file Mirage ships is missing from both the checkout and the installed package."""


def in_checkout() -> bool:
    """True when this package runs from a source tree (editable install or PYTHONPATH), not from a wheel."""
    return (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / SOURCES["migrations"]).is_dir()


def resource_dir(name: str) -> Path:
    """The folder of one shipped resource: the checkout's own when running from one, else the wheel's copy."""
    if name not in SOURCES:
        raise ResourceError(f"unknown resource {name!r} (known: {', '.join(sorted(SOURCES))})")
    candidates = [_CHECKOUT / SOURCES[name]] if in_checkout() else []
    candidates.append(BUNDLE / name)
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise ResourceError(f"{name}: not found in {' or '.join(str(c) for c in candidates)} (a broken install?)")


def migrations_dir() -> Path:
    return resource_dir("migrations")


def example_tenants_dir() -> Path:
    return resource_dir("tenants.d")
