"""Every environment variable Mirage reads, typed and documented in one place (docs/configuration.md)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from mirage.errors import SettingsError
from mirage.i18n import set_default_locale


class Settings(BaseModel):
    """Process settings, read once from the environment; secrets are SecretStr so they never print."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    database_url: SecretStr | None = Field(
        None,
        alias="DATABASE_URL",
        description="Postgres URL (Supabase in production). Unset: an embedded Postgres under the state folder.",
    )
    redis_url: SecretStr | None = Field(
        None, alias="REDIS_URL", description="Redis URL. Unset: an embedded Redis under the state folder."
    )
    state_dir: Path = Field(
        Path(".mirage"),
        alias="MIRAGE_STATE_DIR",
        description="Folder for the embedded servers' data, sockets and logs.",
    )
    tenants_dir: Path = Field(
        Path("tenants.d"), alias="MIRAGE_TENANTS_DIR", description="Default folder of tenant YAML."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", alias="MIRAGE_LOG_LEVEL", description="Lowest level that is logged."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_any_case(cls, value: object) -> object:
        """`debug` works like `--log-level debug` (the option is case-insensitive too)."""
        return value.strip().upper() if isinstance(value, str) else value

    log_format: Literal["auto", "text", "json"] = Field(
        "auto",
        alias="MIRAGE_LOG_FORMAT",
        description="`auto` is text on a terminal and JSON lines otherwise.",
    )
    locale: Literal["en", "pt-BR"] | None = Field(
        None,
        alias="MIRAGE_LOCALE",
        description="Language of messages people read. Unset: from LANG (pt* -> pt-BR, else en).",
    )
    secret_keys: SecretStr | None = Field(
        None,
        alias="MIRAGE_SECRET_KEYS",
        description="Comma-separated Fernet keys; the first encrypts, all decrypt (`mirage keys generate`).",
    )
    public_url: str = Field(
        "http://127.0.0.1:8080",
        alias="MIRAGE_PUBLIC_URL",
        description="Base URL where Evolution reaches Mirage's webhooks.",
    )
    host: str = Field("127.0.0.1", alias="MIRAGE_HOST", description="Address `mirage serve` binds to.")
    port: int = Field(8080, alias="MIRAGE_PORT", ge=1, le=65535, description="Port `mirage serve` listens on.")
    webhook_max_body: int = Field(
        1_048_576,
        alias="MIRAGE_WEBHOOK_MAX_BODY",
        ge=1024,
        description="Largest webhook body accepted, in bytes (larger -> 413).",
    )
    webhook_body_timeout: float = Field(
        10.0,
        alias="MIRAGE_WEBHOOK_BODY_TIMEOUT",
        gt=0,
        le=300,
        description="Seconds a request may take to send its whole body (slower -> 408 and the connection closes).",
    )
    server_timing: bool = Field(
        False,
        alias="MIRAGE_SERVER_TIMING",
        description="Send `Server-Timing: app;dur=<ms>` on every answer (benchmarks; timings help probing, so off).",
    )
    optout_confirmation: bool = Field(
        False,
        alias="MIRAGE_OPTOUT_CONFIRMATION",
        description='Answer an opt-out once with a confirmation ("you will not get more messages"); off by default.',
    )
    page_cache_s: float = Field(
        15.0,
        ge=0,
        le=300,
        alias="MIRAGE_PAGE_CACHE_S",
        description="Seconds a rendered metrics page is reused for viewers of the same tenant and view (0: off).",
    )
    secure_cookies: bool = Field(
        False,
        alias="SECURE_COOKIES",
        description="Mark the metrics page's session cookie Secure (set true behind HTTPS in production).",
    )
    supabase_jwt_secret: SecretStr | None = Field(
        None,
        alias="SUPABASE_JWT_SECRET",
        description="Supabase project's JWT secret: the metrics page accepts its Auth access tokens (HS256).",
    )
    supabase_jwt_audience: str = Field(
        "authenticated", alias="SUPABASE_JWT_AUDIENCE", description="The `aud` Supabase access tokens must carry."
    )
    metrics_token: SecretStr | None = Field(
        None,
        alias="MIRAGE_METRICS_TOKEN",
        description="Bearer token for GET /metrics. Unset: only direct requests from this host's loopback.",
    )
    evolution_base_url: str | None = Field(
        None, alias="EVOLUTION_BASE_URL", description="Default Evolution API base URL when a tenant sets none."
    )
    evolution_api_key: SecretStr | None = Field(
        None, alias="EVOLUTION_API_KEY", description="Default Evolution global API key when a tenant sets none."
    )
    openai_api_key: SecretStr | None = Field(
        None, alias="OPENAI_API_KEY", description="OpenAI key. Unset: the offline phrase generator answers."
    )
    openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL", description="Any OpenAI-compatible endpoint.")
    openai_model: str = Field("gpt-4o-mini", alias="OPENAI_MODEL", description="Default chat model.")
    openai_timeout_s: float = Field(
        10.0,
        gt=0,
        le=15,
        alias="OPENAI_TIMEOUT_S",
        description="Seconds one model request may take (at most 15); a message waits at most about twice this.",
    )
    actor: str | None = Field(
        None,
        alias="MIRAGE_ACTOR",
        description="Who `mirage apply` records in t_applies. Unset: the CI's user, else user@host.",
    )

    @property
    def resolved_locale(self) -> str:
        if self.locale:
            return self.locale
        lang = os.environ.get("LC_ALL") or os.environ.get("LANG") or ""
        return "pt-BR" if lang.lower().startswith("pt") else "en"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, dotenv: Path | None = None) -> Settings:
        """Read settings from `environ` (default: ./.env under os.environ); empty strings count as unset."""
        if environ is None:
            # MIRAGE_DOTENV names another file; an empty value turns .env reading off (the tests do).
            default = os.environ.get("MIRAGE_DOTENV", ".env")
            path = dotenv or (Path(default) if default else None)
            env: Mapping[str, str] = {**(read_dotenv(path) if path else {}), **os.environ}
        else:
            env = environ
        names = {f.alias for f in cls.model_fields.values() if f.alias}
        values = {k: v for k, v in env.items() if k in names and v != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            err = e.errors()[0]
            var = str(err["loc"][0]) if err["loc"] else "?"
            raise SettingsError(var, err["msg"]) from e


_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments, blank lines and `export` allowed; quotes stripped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(str(path), f"cannot read: {e}") from e
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _DOTENV_LINE.match(line)
        if not m:
            raise SettingsError(f"{path}:{number}", "expected KEY=VALUE")
        key, value = m.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    return out


STATE_ENV = "demo.env"


def state_env_path(state_dir: Path) -> Path:
    """The state folder's settings file: `mirage demo` keeps there the URLs and keys of the world it set up."""
    return state_dir / STATE_ENV


def write_state_env(path: Path, values: Mapping[str, str]) -> None:
    """Write `values` as KEY=VALUE lines, owner-only (it may hold a key), for `load_state_env`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Written by `mirage demo`: the settings of the world it set up (simulator URL and key).",
        "# Every mirage command run with this state folder reads it; the environment and ./.env win.",
        *(f"{k}={v}" for k, v in values.items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


def load_state_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Put the state folder's settings (`mirage demo`'s world) into `environ` under whatever is set already.

    Into the process environment, so `${EVOLUTION_BASE_URL}` in tenant YAML resolves the same way as the
    settings do. Returns what it added.
    """
    env = os.environ if environ is None else environ
    default = env.get("MIRAGE_DOTENV", ".env")
    dotenv = read_dotenv(Path(default)) if default else {}
    state_dir = Path(env.get("MIRAGE_STATE_DIR") or dotenv.get("MIRAGE_STATE_DIR") or ".mirage")
    added = {k: v for k, v in read_dotenv(state_env_path(state_dir)).items() if k not in env and k not in dotenv}
    env.update(added)
    return added


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call `get_settings.cache_clear()` after changing the environment."""
    return Settings.from_env()


set_default_locale(lambda: get_settings().resolved_locale)  # t() without --lang follows MIRAGE_LOCALE / LANG


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block (settings re-read inside it), then restore them as they were."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
