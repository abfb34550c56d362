"""A fast CLI: `mirage --version` loads click and nothing heavy; a command loads only its own module's needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import mirage
from mirage.cli import COMMANDS, cli
from mirage.cli.base import declared_commands

HEAVY = ("pydantic", "yaml", "psycopg", "psycopg_pool", "redis", "rq", "httpx", "starlette", "uvicorn", "openai")
IO = ("psycopg", "psycopg_pool", "redis", "rq", "httpx", "starlette", "uvicorn", "openai", "segno")

PROBE = """
import json, sys
sys.argv = ["mirage", *json.loads(sys.argv[1])]
from mirage.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))
"""


def _top_modules_after(*argv: str) -> set[str]:
    env = {**os.environ, "MIRAGE_DOTENV": "", "MIRAGE_LOG_LEVEL": "WARNING"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(argv))],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_version_imports_nothing_heavy() -> None:
    assert not _top_modules_after("--version") & set(HEAVY)


def test_validate_imports_no_database_redis_or_http_client() -> None:
    assert not _top_modules_after("validate", "tenants.d") & set(IO)


def _defining_modules(cmd: click.Command) -> set[str]:
    found = {cmd.callback.__module__} if cmd.callback is not None else set()
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            found |= _defining_modules(sub)
    return {m for m in found if m.startswith("mirage.cli.")}


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_the_console_script_knows_which_module_defines_each_command(name: str) -> None:
    """`COMMANDS` lets `mirage <command>` import one module; a command missing there still works, slower."""
    assert _defining_modules(cli.commands[name]) <= set(COMMANDS.get(name, ()))


def test_every_lazy_command_exists() -> None:
    assert set(COMMANDS) == set(cli.commands)


def test_the_version_has_one_source() -> None:
    from importlib.metadata import version

    assert version("mirage-whats-orchestrator") == mirage.__version__


def test_help_imports_nothing_heavy() -> None:
    assert not _top_modules_after("--help") & set(HEAVY)


@pytest.mark.parametrize("limit", [30, 45, 80])
def test_the_help_list_read_from_source_is_the_one_click_builds_from_the_commands(limit: int) -> None:
    """`mirage --help` lists the commands from their modules' source; it must say what the loaded commands say."""
    declared = declared_commands()
    assert declared is not None
    assert {n for n, c in declared.items() if not c.hidden} == {n for n, c in cli.commands.items() if not c.hidden}
    for name, cmd in cli.commands.items():
        assert declared[name].get_short_help_str(limit) == cmd.get_short_help_str(limit), name


def test_a_declaration_the_source_does_not_say_plainly_falls_back_to_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mirage.cli.base as base

    folder = tmp_path / "cli"
    folder.mkdir()
    (folder / "odd.py").write_text('NAME = "odd"\n\n\n@cli.command(NAME)\ndef odd() -> None:\n    """Odd."""\n')
    monkeypatch.setattr(base, "__file__", str(folder / "base.py"))
    assert base.declared_commands() is None
    help_text = CliRunner().invoke(cli, ["--help"]).output
    assert "validate" in help_text and "Commands:" in help_text
