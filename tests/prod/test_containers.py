"""The Dockerfile and infra/docker-compose.yml name only things that exist: Mirage's commands and their options,
its settings (and .env.example's lines), its routes and port. No base image can be pulled here, so this is how the
container files are kept honest; the negative cases prove a rename on either side is caught.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from mirage.cli import cli
from mirage.settings import Settings
from mirage.web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {f.alias for f in Settings.model_fields.values() if f.alias}
DEFAULT_PORT = Settings.model_fields["port"].default
# Variables that belong to Python and pip inside the image, not to Mirage or the operator's .env
RUNTIME_VARS = {
    "PATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
}
VAR_REF = re.compile(
    r"\$\$?\{?([A-Z][A-Z0-9_]*)|environ(?:\.get)?\(\s*['\"]([A-Z][A-Z0-9_]*)['\"]|environ\[['\"]([A-Z0-9_]+)"
)
URL = re.compile(r"http://127\.0\.0\.1:(?:(\d+)|'\s*\+[^+]+\+\s*')(/[a-z0-9/_-]*)")


@dataclass
class Files:
    dockerfile: str
    compose: str
    env_example: str
    cli: click.Group = field(default=cli)
    dockerignore: list[str] = field(default_factory=list)


def _routes() -> dict[str, set[str]]:
    app = create_app(Settings.from_env({}))
    return {r.path: set(getattr(r, "methods", None) or ()) for r in app.routes}


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in dockerfile.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        buf += line.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def _argv(value: str | list[str]) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    value = value.strip()
    return [str(v) for v in json.loads(value)] if value.startswith("[") else shlex.split(value)


def check_command(group: click.Group, argv: list[str], where: str) -> list[str]:
    """`mirage <sub…> [options]`: every subcommand exists and click accepts the options."""
    if not argv or argv[0] != "mirage":
        return []
    cmd: click.Command = group
    args = argv[1:]
    path = ["mirage"]
    while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
        sub = cmd.commands.get(args[0])
        if sub is None:
            return [f"{where}: `{' '.join([*path, args[0]])}` is not a Mirage command"]
        path.append(args.pop(0))
        cmd = sub
    try:
        cmd.make_context(" ".join(path), list(args))
    except click.UsageError as e:
        return [f"{where}: `{' '.join(argv)}`: {e.format_message()}"]
    return []


def check_vars(names: Iterable[str], env_example: str, where: str) -> list[str]:
    problems = []
    for name in sorted(set(names) - RUNTIME_VARS):
        if name.startswith(("MIRAGE_", "DATABASE_", "REDIS_URL", "EVOLUTION_", "OPENAI_")) and name not in SETTINGS:
            problems.append(f"{where}: {name} is not a Mirage setting")
        if not re.search(rf"^#? ?{re.escape(name)}=", env_example, re.M):
            problems.append(f"{where}: {name} is not in .env.example")
    return problems


def check_urls(text: str, port: str, routes: dict[str, set[str]], where: str) -> list[str]:
    problems = []
    found = URL.findall(text)
    if not found:
        problems.append(f"{where}: health check names no http://127.0.0.1:<port>/<route>")
    for literal_port, path in found:
        if literal_port and literal_port != port:
            problems.append(f"{where}: health check port {literal_port}, the service listens on {port}")
        if "GET" not in routes.get(path, set()):
            problems.append(f"{where}: GET {path} is not a route of Mirage's service")
    return problems


def check_dockerfile(files: Files, routes: dict[str, set[str]]) -> list[str]:
    problems: list[str] = []
    steps = instructions(files.dockerfile)
    stages = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    if len(stages) < 2:
        problems.append("Dockerfile: not multi-stage")
    final = steps[stages[-1] :] if stages else steps
    if "slim" not in final[0][1]:
        problems.append(f"Dockerfile: final stage is not a slim image: {final[0][1]}")
    users = [rest for word, rest in final if word == "USER"]
    if not users or users[-1] in ("root", "0"):
        problems.append("Dockerfile: the final stage runs as root")
    for word, rest in final:
        if word == "RUN" and re.search(r"apt-get install|apk add|build-essential|gcc", rest):
            problems.append(f"Dockerfile: build tools installed in the final stage: {rest[:60]}")
    env: dict[str, str] = {}
    for word, rest in steps:
        if word == "ENV":
            env.update(dict(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)", rest)))
        if word == "COPY" and not rest.startswith("--from"):
            for src in shlex.split(rest)[:-1]:
                if not (ROOT / src).exists():
                    problems.append(f"Dockerfile: COPY {src}: no such path in the repository")
                if any(fnmatch.fnmatch(src, pattern) for pattern in files.dockerignore):
                    problems.append(f"Dockerfile: COPY {src}: excluded from the build context by .dockerignore")
    problems += check_vars(env, files.env_example, "Dockerfile ENV")
    port = env.get("MIRAGE_PORT", str(DEFAULT_PORT))
    exposed = [rest.split("/")[0] for word, rest in final if word == "EXPOSE"]
    if exposed != [port]:
        problems.append(f"Dockerfile: EXPOSE {exposed} but the service listens on {port}")
    health = [rest for word, rest in final if word == "HEALTHCHECK"]
    if not health:
        problems.append("Dockerfile: no HEALTHCHECK")
    for text in health:
        problems += check_urls(text, port, routes, "Dockerfile HEALTHCHECK")
        problems += check_vars((a or b or c for a, b, c in VAR_REF.findall(text)), files.env_example, "HEALTHCHECK")
    cmds = [rest for word, rest in final if word in ("CMD", "ENTRYPOINT")]
    for text in cmds:
        problems += check_command(files.cli, _argv(text), "Dockerfile CMD")
    if not any(_argv(c)[:2] == ["mirage", "serve"] for c in cmds):
        problems.append("Dockerfile: the default command is not `mirage serve`")
    return problems


def check_compose(files: Files, routes: dict[str, set[str]]) -> list[str]:
    problems: list[str] = []
    doc = yaml.safe_load(files.compose)  # resolves the `<<: *mirage` merge keys
    services: dict[str, dict[str, Any]] = doc.get("services", {})
    for name, want in (("redis", None), ("orchestrator", "serve"), ("worker", "worker"), ("cron", "cron")):
        svc = services.get(name)
        if svc is None:
            problems.append(f"compose: no `{name}` service")
            continue
        if want and _argv(svc.get("command", []))[:2] != ["mirage", want]:
            problems.append(f"compose: `{name}` does not run `mirage {want}`")
    for name, svc in services.items():
        where = f"compose {name}"
        build = svc.get("build")
        if build:
            context = (ROOT / "infra" / build.get("context", ".")).resolve()
            if not (context / build.get("dockerfile", "Dockerfile")).is_file():
                problems.append(f"{where}: build file not found under {context}")
        env_files = svc.get("env_file", [])
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            if (
                Path(env_file).name != ".env"
                or not (ROOT / "infra" / env_file).resolve().with_name(".env.example").is_file()
            ):
                problems.append(f"{where}: env_file {env_file} is not the .env that .env.example documents")
        command = _argv(svc.get("command", []))
        problems += check_command(files.cli, command, where)
        environment = svc.get("environment", {}) or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        refs = list(environment) + [a or b or c for a, b, c in VAR_REF.findall(json.dumps(svc))]
        problems += check_vars(refs, files.env_example, where)
        port = str(environment.get("MIRAGE_PORT", DEFAULT_PORT))
        for mapping in svc.get("ports", []):
            parts = str(mapping).split(":")
            if len(parts) != 3 or parts[0] != "127.0.0.1":
                problems.append(f"{where}: port {mapping} is published beyond the host's loopback")
            if command[:2] == ["mirage", "serve"] and parts[-1] != port:
                problems.append(f"{where}: publishes container port {parts[-1]}, `mirage serve` listens on {port}")
        health = svc.get("healthcheck", {})
        if command[:2] == ["mirage", "serve"]:
            if not health or health.get("disable"):
                problems.append(f"{where}: the web service has no health check")
            else:
                problems += check_urls(json.dumps(health.get("test")).replace('\\"', '"'), port, routes, where)
    return problems


def check(files: Files) -> list[str]:
    routes = _routes()
    return check_dockerfile(files, routes) + check_compose(files, routes)


def _real() -> Files:
    return Files(
        dockerfile=(ROOT / "Dockerfile").read_text(encoding="utf-8"),
        compose=(ROOT / "infra" / "docker-compose.yml").read_text(encoding="utf-8"),
        env_example=(ROOT / ".env.example").read_text(encoding="utf-8"),
        dockerignore=[
            line.strip()
            for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        ],
    )


def test_dockerfile_and_compose_name_only_existing_commands_settings_routes_and_ports() -> None:
    assert check(_real()) == []


def _renamed_command(old: str, new: str) -> click.Group:
    """A copy of Mirage's CLI in which one command has another name (as if it were renamed in the code)."""
    group = click.Group("mirage", commands=dict(cli.commands))
    group.commands[new] = group.commands.pop(old)
    return group


RENAMES = [
    # (file, old text, new text, what the problem names)
    ("compose", '"mirage", "serve"', '"mirage", "server"', "mirage server"),
    ("compose", '"--workers", "2"', '"--worker", "2"', "--worker"),
    ("compose", '"--workers", "2"', '"--workers", "two"', "'two' is not a valid integer"),
    ("compose", '"mirage", "worker"]', '"mirage", "worker", "--queue", "evnts"]', "evnts"),
    ("compose", "MIRAGE_HOST: 0.0.0.0", "MIRAGE_BIND: 0.0.0.0", "MIRAGE_BIND is not a Mirage setting"),
    ("compose", "127.0.0.1:8080:8080", "127.0.0.1:8080:8081", "container port 8081"),
    ("compose", "0.1:8080/readyz", "0.1:8080/ready", "GET /ready is not a route"),
    ("compose", '"127.0.0.1:8080:8080"', '"8080:8080"', "beyond the host's loopback"),
    ("dockerfile", "MIRAGE_PORT=8080", "MIRAGE_PROT=8080", "MIRAGE_PROT is not a Mirage setting"),
    ("dockerfile", "/readyz'", "/ready'", "GET /ready is not a route"),
    ("dockerfile", 'CMD ["mirage", "serve"]', 'CMD ["mirage", "web"]', "`mirage web` is not a Mirage command"),
    ("dockerfile", "EXPOSE 8080", "EXPOSE 8000", "EXPOSE ['8000']"),
    ("dockerfile", "USER mirage", "USER root", "runs as root"),
    ("dockerfile", "COPY mirage ./mirage", "COPY mirage_pkg ./mirage", "COPY mirage_pkg"),
    ("env_example", "# REDIS_PASSWORD=", "# REDIS_PASS=", "REDIS_PASSWORD is not in .env.example"),
    ("env_example", "# MIRAGE_HOST=", "# MIRAGE_LISTEN=", "MIRAGE_HOST is not in .env.example"),
    ("dockerignore", "", "schemas", "COPY schemas: excluded from the build context"),
    ("cli", "cron", "scheduler", "`mirage cron` is not a Mirage command"),
    ("cli", "worker", "workers", "`mirage worker` is not a Mirage command"),
]


@pytest.mark.parametrize(("part", "old", "new", "expected"), RENAMES, ids=[f"{r[0]}:{r[1]}->{r[2]}" for r in RENAMES])
def test_a_rename_on_either_side_is_caught(part: str, old: str, new: str, expected: str) -> None:
    files = _real()
    if part == "cli":
        files.cli = _renamed_command(old, new)
    elif part == "dockerignore":
        files.dockerignore = [*files.dockerignore, new]
    else:
        text = getattr(files, part)
        assert old in text, f"the negative case no longer matches {part}: {old!r}"
        setattr(files, part, text.replace(old, new, 1))
    problems = check(files)
    assert any(expected in p for p in problems), problems
