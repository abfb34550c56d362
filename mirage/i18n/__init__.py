"""Strings people read (CLI, pages) in one catalog per language: en.yaml and pt-BR.yaml beside this file."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

LOCALES = ("en", "pt-BR")
_HERE = Path(__file__).parent
_current: str | None = None


@cache
def catalog(locale: str) -> dict[str, str]:
    """The flat key -> template mapping for `locale` (dotted keys from the nested YAML)."""
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


def get_locale() -> str:
    if _current:
        return _current
    from mirage.settings import get_settings

    return get_settings().resolved_locale


def t(key: str, locale: str | None = None, **fields: Any) -> str:
    """Translate `key` and fill `{field}` placeholders; falls back to English, then to the key itself."""
    loc = locale or get_locale()
    template = catalog(loc).get(key) or catalog("en").get(key) or key
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError):
        return template
