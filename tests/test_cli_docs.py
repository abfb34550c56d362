"""Every CLI command has help text, every option says what it does, and the README/docs mention each command."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from mirage.cli import cli
from mirage.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        path = (*prefix, name)
        out.append((path, cmd))
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, path))
    return out


COMMANDS = _commands(cli)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_and_option_has_help(path: tuple[str, ...], command: click.Command) -> None:
    assert (command.help or "").strip(), f"`mirage {' '.join(path)}` has no help text"
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("help",):
            assert (param.help or "").strip(), f"`mirage {' '.join(path)}` option {param.opts} has no help"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_is_documented(path: tuple[str, ...], command: click.Command) -> None:
    docs = (ROOT / "README.md").read_text(encoding="utf-8") + "".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "docs").rglob("*.md")
    )
    assert f"mirage {' '.join(path)}" in docs, f"`mirage {' '.join(path)}` is not mentioned in README.md or docs/"


def test_every_environment_variable_is_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    for field in Settings.model_fields.values():
        assert f"{field.alias}=" in text, f"{field.alias} missing from .env.example"
