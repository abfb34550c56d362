"""Health checks behind `mirage doctor`: which services are in use, their versions, migrations, integrations."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from mirage.backends import Backend, postgres_backend, redis_backend
from mirage.errors import MirageError
from mirage.i18n import t
from mirage.settings import Settings


class Level(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass
class Check:
    name: str
    level: Level
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def check_postgres(settings: Settings) -> tuple[Check, Any]:
    """Connect and read the server version; returns the open connection for the later checks."""
    from mirage.db.connect import connect

    try:
        backend: Backend = postgres_backend(settings)
    except MirageError as e:
        return Check("postgres", Level.FAIL, _one_line(e)), None
    kind = t("doctor.embedded") if backend.embedded else "DATABASE_URL"
    try:
        conn = connect(backend.url)
        version = conn.execute("show server_version").fetchone()["server_version"]  # type: ignore[index]
        conn.rollback()
    except MirageError as e:
        return Check("postgres", Level.FAIL, f"{kind} {backend.masked}: {_one_line(e)}", {"url": backend.masked}), None
    details = {"url": backend.masked, "embedded": backend.embedded, "version": version}
    summary = f"{kind} {backend.masked} (PostgreSQL {version})"
    problems = [] if backend.embedded else url_problems(backend.url)
    if problems:
        return Check("postgres", Level.WARN, f"{summary}: {'; '.join(problems)}", details), conn
    return Check("postgres", Level.OK, summary, details), conn


def url_problems(url: str) -> list[str]:
    """What is wrong with a reachable DATABASE_URL for production: Supabase's transaction pooler, no TLS."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except Exception:  # psycopg raises ProgrammingError; a URL it cannot parse never connected anyway
        return []
    host, port = str(params.get("host") or ""), str(params.get("port") or "5432")
    problems = []
    if port == "6543":
        problems.append(t("doctor.postgres_transaction_pooler"))
    local = not host or host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")
    if not local and params.get("sslmode") not in ("require", "verify-ca", "verify-full"):
        problems.append(t("doctor.postgres_no_tls"))
    return problems


def check_migrations(conn: Any) -> Check:
    from mirage.db.migrate import MigrationError, status

    try:
        st = status(conn)
    except MigrationError as e:
        return Check("migrations", Level.FAIL, _one_line(e))
    details = {
        "applied": len(st.applied),
        "pending": [m.name for m in st.pending],
        "edited": st.edited,
        "missing": st.missing,
    }
    if st.edited:
        return Check("migrations", Level.FAIL, t("doctor.migrations_edited", names=", ".join(st.edited)), details)
    if st.pending:
        return Check("migrations", Level.WARN, t("doctor.migrations_pending", n=len(st.pending)), details)
    return Check("migrations", Level.OK, t("doctor.migrations_current", n=len(st.applied)), details)


def check_redis(settings: Settings) -> Check:
    import redis

    try:
        backend = redis_backend(settings)
    except MirageError as e:
        return Check("redis", Level.FAIL, _one_line(e))
    kind = t("doctor.embedded") if backend.embedded else "REDIS_URL"
    try:
        with redis.Redis.from_url(backend.url, socket_connect_timeout=3, socket_timeout=3) as client:
            info = client.info("server")
    except (redis.RedisError, OSError, ValueError) as e:
        return Check("redis", Level.FAIL, f"{kind} {backend.masked}: {_one_line(e)}", {"url": backend.masked})
    version = info.get("redis_version", "?")
    return Check(
        "redis",
        Level.OK,
        f"{kind} {backend.masked} (Redis {version})",
        {"url": backend.masked, "embedded": backend.embedded, "version": version},
    )


def check_secret_keys(settings: Settings) -> Check:
    if settings.secret_keys is None:
        if settings.database_url is None:  # embedded: mirage.crypto keeps a local key in the state folder
            path = settings.state_dir.resolve() / "secret_keys"
            return Check("secret_keys", Level.WARN, t("doctor.secret_keys_local", path=path), {"local": str(path)})
        return Check("secret_keys", Level.FAIL, t("doctor.secret_keys_missing"))
    from cryptography.fernet import Fernet

    keys = [k.strip() for k in settings.secret_keys.get_secret_value().split(",") if k.strip()]
    try:
        for k in keys:
            Fernet(k)
    except (ValueError, TypeError):
        return Check("secret_keys", Level.FAIL, t("doctor.secret_keys_invalid"))
    return Check("secret_keys", Level.OK, t("doctor.secret_keys_ok", n=len(keys)), {"keys": len(keys)})


def check_evolution(settings: Settings) -> Check:
    if not settings.evolution_base_url:
        return Check("evolution", Level.WARN, t("doctor.evolution_missing"))
    import httpx

    from mirage.integrations.evolution.errors import evolution_message, is_cors_refusal

    url = settings.evolution_base_url
    try:
        r = httpx.get(url.rstrip("/") + "/", timeout=3)
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    except (httpx.HTTPError, ValueError) as e:
        return Check("evolution", Level.WARN, f"{url}: {_one_line(e)}")
    if is_cors_refusal(r.status_code, body):  # a setting on Evolution's side, not an outage: say which one
        return Check("evolution", Level.FAIL, t("doctor.evolution_cors", url=url), {"url": url, "status": 500})
    if r.status_code >= 400:
        message = evolution_message(body) or r.reason_phrase
        return Check(
            "evolution",
            Level.WARN,
            t("doctor.evolution_status", url=url, status=r.status_code, message=message),
            {"url": url, "status": r.status_code},
        )
    version = body.get("version", "?") if isinstance(body, dict) else "?"
    return Check(
        "evolution",
        Level.OK,
        f"{settings.evolution_base_url} (Evolution API {version})",
        {"url": settings.evolution_base_url, "version": version, "api_key": settings.evolution_api_key is not None},
    )


def check_openai(settings: Settings, timeout: float = 3.0) -> Check:
    """GET /models on the configured endpoint (short timeout): is OPENAI_MODEL offered? Never shows the key."""
    if settings.openai_api_key is None and settings.openai_base_url is None:
        return Check("openai", Level.WARN, t("doctor.openai_offline"))
    import openai

    from mirage.engine.generation.model import LLMConfig
    from mirage.integrations.openai.client import DEFAULT_BASE_URL, openai_client

    where = settings.openai_base_url or DEFAULT_BASE_URL
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key is not None else None
    details: dict[str, Any] = {"model": settings.openai_model, "base_url": where, "api_key": key is not None}
    client = openai_client(LLMConfig(api_key=key, base_url=settings.openai_base_url, timeout_s=timeout, max_retries=0))
    try:
        offered = sorted(m.id for m in client.models.list())
    except openai.APIStatusError as e:
        details["status"] = e.status_code
        if e.status_code in (401, 403):
            return Check("openai", Level.WARN, t("doctor.openai_refused", where=where, status=e.status_code), details)
        return Check("openai", Level.WARN, t("doctor.openai_unreachable", where=where, reason=f"HTTP {e.status_code}"))
    except openai.APIError as e:  # timeouts, refused connections, a body that is not a model list
        reason = type(e).__name__
        return Check("openai", Level.WARN, t("doctor.openai_unreachable", where=where, reason=reason), details)
    details["models"] = len(offered)
    if settings.openai_model not in offered:
        shown = ", ".join(offered[:5]) + (" …" if len(offered) > 5 else "")
        summary = t("doctor.openai_model_missing", where=where, model=settings.openai_model, models=shown or "-")
        return Check("openai", Level.WARN, summary, details)
    return Check(
        "openai", Level.OK, t("doctor.openai_ok", where=where, model=settings.openai_model, n=len(offered)), details
    )


def check_public_url(settings: Settings, timeout: float = 3.0) -> Check:
    """GET MIRAGE_PUBLIC_URL/readyz the way Evolution will reach Mirage: through the proxy, TLS verified."""
    from urllib.parse import urlsplit

    import httpx

    url = settings.public_url.rstrip("/")
    parts = urlsplit(url)
    details: dict[str, Any] = {"url": url, "https": parts.scheme == "https", "secure_cookies": settings.secure_cookies}
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return Check("public_url", Level.WARN, t("doctor.public_url_local", url=url), details)
    try:
        r = httpx.get(url + "/readyz", timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as e:
        return Check(
            "public_url", Level.FAIL, t("doctor.public_url_unreachable", url=url, reason=_one_line(e)), details
        )
    details["status"] = r.status_code
    if r.status_code != 200:
        return Check("public_url", Level.FAIL, t("doctor.public_url_status", url=url, status=r.status_code), details)
    if parts.scheme != "https":
        return Check("public_url", Level.WARN, t("doctor.public_url_plain", url=url), details)
    if not settings.secure_cookies:
        return Check("public_url", Level.WARN, t("doctor.public_url_cookies", url=url), details)
    return Check("public_url", Level.OK, t("doctor.public_url_ok", url=url), details)


def run_checks(settings: Settings) -> list[Check]:
    pg, conn = check_postgres(settings)
    checks = [pg]
    if conn is not None:
        checks.append(check_migrations(conn))
        conn.close()
    checks += [check_redis(settings), check_secret_keys(settings), check_evolution(settings), check_openai(settings)]
    checks.append(check_public_url(settings))
    return checks
