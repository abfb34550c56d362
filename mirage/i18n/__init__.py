"""Strings people read (CLI, pages) in one catalog per language: en.yaml and pt-BR.yaml beside this file.

Pure enough for the core to use (reconcile/render.py): the default language comes from a resolver the
shell installs (mirage.settings installs MIRAGE_LOCALE / LANG on import), never from settings directly.

Layer: base (docs/architecture.md#layers). May import: the standard library and PyYAML; no layer (`base`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

LOCALES = ("en", "pt-BR")
_HERE = Path(__file__).parent
_current: str | None = None
_default: Callable[[], str] | None = None


@cache
def catalog(locale: str) -> dict[str, str]:
    """The flat key -> template mapping for `locale` (dotted keys from the nested YAML)."""
    import yaml  # only when a string is first translated: `mirage --version` never pays for it

    data = yaml.safe_load((_HERE / f"{locale}.yaml").read_text(encoding="utf-8")) or {}
    flat: dict[str, str] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = str(node)

    walk("", data)
    return flat


def set_locale(locale: str | None) -> None:
    global _current
    _current = locale if locale in LOCALES else None


def set_default_locale(resolver: Callable[[], str] | None) -> None:
    """Where the language comes from when none was set (`--lang`): the shell's settings; None: English."""
    global _default
    _default = resolver


def get_locale() -> str:
    if _current:
        return _current
    return _default() if _default is not None else "en"


def t(key: str, locale: str | None = None, **fields: Any) -> str:
    """Translate `key` and fill `{field}` placeholders; falls back to English, then to the key itself."""
    loc = locale or get_locale()
    template = catalog(loc).get(key) or catalog("en").get(key) or key
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError):
        return template
