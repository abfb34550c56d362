"""The root click group: global options, logging set-up, and errors turned into messages and exit codes.

Kept light on purpose (click and Mirage's error types only): `mirage --version` imports nothing else, and a
command imports only the module that defines it (`lazy`, filled by mirage.cli), so `mirage validate` never
loads the database, Redis or HTTP clients. Heavy modules are imported where they are used.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from mirage import __version__
from mirage.errors import MirageError

_DECORATORS = {"command": click.Command, "group": click.Group}


def declared_commands() -> dict[str, click.Command] | None:
    """Every root command the modules of mirage/cli declare (`@cli.command(...)` / `@cli.group(...)` on a
    top-level function), as click would build it for its help line; None when a declaration uses anything but
    literals (the caller then imports the modules)."""
    import ast

    found: dict[str, click.Command] = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name in ("__init__.py", "base.py"):
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if not (
                    isinstance(deco, ast.Call)
                    and isinstance(deco.func, ast.Attribute)
                    and isinstance(deco.func.value, ast.Name)
                    and deco.func.value.id == "cli"
                    and deco.func.attr in _DECORATORS
                ):
                    continue
                try:
                    args = [ast.literal_eval(a) for a in deco.args]
                    attrs = {k.arg: ast.literal_eval(k.value) for k in deco.keywords if k.arg is not None}
                except ValueError:
                    return None
                if len(deco.keywords) != len(attrs) or set(attrs) - {
                    "name",
                    "help",
                    "short_help",
                    "hidden",
                    "deprecated",
                }:
                    return None
                name = args[0] if args else attrs.pop("name", None)
                attrs.pop("name", None)
                if name is None:  # click's rule: the function's name, dashed, without a _command/_group suffix
                    name = node.name.lower().replace("_", "-")
                    left, sep, suffix = name.rpartition("-")
                    name = left if sep and suffix in {"command", "cmd", "group", "grp"} else name
                if not isinstance(name, str):
                    return None
                attrs.setdefault("help", ast.get_docstring(node, clean=False))
                found[name] = _DECORATORS[deco.func.attr](name=name, **attrs)
    return found or None  # no source to read (a bytecode-only install): import instead


class MirageGroup(click.Group):
    """A click group that renders MirageError as one clear message and its exit code, never a traceback.

    Commands not registered yet are imported on first use from `lazy` (command -> modules defining it); a
    name it does not know imports every command module. The root help reads the list from source (ADR 0043).
    """

    lazy: Mapping[str, tuple[str, ...]] = {}
    load_all: Any = None  # set by mirage.cli: imports every command module

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        for module in self.lazy.get(cmd_name, ()):
            importlib.import_module(module)
        if cmd_name not in self.commands and self.load_all is not None:
            self.load_all()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        if self.load_all is not None:
            self.load_all()
        return super().list_commands(ctx)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The root help's command list, read from the command modules' source (no import, so `mirage --help`
        stays as light as `--version`); anything the source does not say plainly falls back to importing."""
        declared = declared_commands() if self.load_all is not None else None
        if declared is None:
            super().format_commands(ctx, formatter)
            return
        shown = [(name, cmd) for name, cmd in sorted({**declared, **self.commands}.items()) if not cmd.hidden]
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in shown)
        with formatter.section("Commands"):
            formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in shown])

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MirageError as e:
            from mirage.i18n import t

            click.echo(f"{t('cli.error')}: {e}", err=True)
            ctx.exit(e.exit_code)


@click.group(cls=MirageGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="mirage")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the embedded Postgres and Redis [env MIRAGE_STATE_DIR, default .mirage].",
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "text", "json"]),
    help="Log lines as text or JSON [env MIRAGE_LOG_FORMAT; auto: text on a terminal].",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Lowest level logged [env MIRAGE_LOG_LEVEL, default INFO].",
)
@click.option(
    "--lang", type=click.Choice(["en", "pt-BR"]), help="Language of messages [env MIRAGE_LOCALE; default from LANG]."
)
def cli(state_dir: Path | None, log_format: str | None, log_level: str | None, lang: str | None) -> None:
    """Mirage: WhatsApp fleets configured as code.

    Describe tenants as YAML under tenants.d/, check them with `mirage validate` and `mirage lint`,
    preview changes with `mirage plan` and make them so with `mirage apply`. `mirage serve` takes
    Evolution API webhooks; `mirage worker` runs the jobs.

    With DATABASE_URL / REDIS_URL unset, Mirage starts an embedded Postgres and Redis under the
    state folder and every Mirage process shares them. Docs: docs/README.md.
    """
    if state_dir is not None:
        os.environ["MIRAGE_STATE_DIR"] = str(state_dir)
    if log_format is not None:
        os.environ["MIRAGE_LOG_FORMAT"] = log_format
    if log_level is not None:
        os.environ["MIRAGE_LOG_LEVEL"] = log_level.upper()
    if lang is not None:
        os.environ["MIRAGE_LOCALE"] = lang
    from mirage.i18n import set_locale
    from mirage.logs import configure_logging
    from mirage.settings import get_settings, load_state_env

    try:
        load_state_env()  # what `mirage demo` left in the state folder: the tour runs against the same world
    except MirageError as e:
        raise click.ClickException(str(e)) from e
    get_settings.cache_clear()
    try:
        settings = get_settings()
    except MirageError as e:
        raise click.ClickException(str(e)) from e
    set_locale(settings.resolved_locale)
    configure_logging(settings.log_level, settings.log_format, sys.stderr)


def main() -> None:
    cli(prog_name="mirage")
