"""`mirage doctor` checks MIRAGE_PUBLIC_URL the way Evolution reaches Mirage: GET /readyz through it, TLS verified,
and SECURE_COOKIES on behind https. The servers are real: Mirage's app on a loopback address, and a TLS server
with a certificate from a throw-away authority that the check is told to trust (SSL_CERT_FILE), like Let's Encrypt's.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirage.doctor import Level, check_public_url
from mirage.integrations.evolution_sim.runner import serve_in_thread
from mirage.settings import Settings
from tests.prod.tls import make_tls


class _Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/readyz" else 404
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """https://localhost:<port> answering /readyz 200, its authority trusted through SSL_CERT_FILE."""
    paths = make_tls(tmp_path / "tls")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(paths["cert"], paths["key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(paths["ca"]))
    try:
        yield f"https://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _settings(**env: str) -> Settings:
    return Settings.from_env(env)


def test_https_public_url_with_a_valid_certificate_and_secure_cookies_is_ok(tls_server: str) -> None:
    check = check_public_url(_settings(MIRAGE_PUBLIC_URL=tls_server, SECURE_COOKIES="true"))
    assert check.level is Level.OK, check.summary
    assert "GET /readyz 200 over https" in check.summary


def test_https_without_secure_cookies_warns(tls_server: str) -> None:
    check = check_public_url(_settings(MIRAGE_PUBLIC_URL=tls_server))
    assert check.level is Level.WARN and "SECURE_COOKIES" in check.summary


def test_a_certificate_nobody_trusts_fails(tls_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    check = check_public_url(_settings(MIRAGE_PUBLIC_URL=tls_server, SECURE_COOKIES="true"))
    assert check.level is Level.FAIL and "CERTIFICATE_VERIFY_FAILED" in check.summary


@pytest.mark.parametrize(
    ("url", "level", "words"),
    [
        ("http://127.0.0.1:8080", Level.WARN, "local address"),
        ("https://127.0.0.1:1", Level.FAIL, "GET /readyz failed"),
    ],
    ids=["default-local", "nothing-listening"],
)
def test_local_and_unreachable_public_urls(url: str, level: Level, words: str) -> None:
    check = check_public_url(_settings(MIRAGE_PUBLIC_URL=url), timeout=1)
    assert check.level is level and words in check.summary


def test_plain_http_reachable_from_outside_loopback_warns_and_a_non_ready_service_fails(database_url: str) -> None:
    from mirage.web.app import create_app

    handle = serve_in_thread(create_app(_settings(DATABASE_URL=database_url)), host="127.0.0.2")
    try:
        check = check_public_url(_settings(MIRAGE_PUBLIC_URL=handle.url))
        assert check.level is Level.WARN and "not https" in check.summary
    finally:
        handle.stop()
    broken = serve_in_thread(create_app(_settings(DATABASE_URL="postgresql://nobody@127.0.0.1:1/x")), host="127.0.0.2")
    try:
        check = check_public_url(_settings(MIRAGE_PUBLIC_URL=broken.url), timeout=10)
        assert check.level is Level.FAIL and "answered 503" in check.summary
    finally:
        broken.stop()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://postgres.abc:pw@aws-0-sa-east-1.pooler.supabase.com:5432/postgres?sslmode=require", []),
        ("postgresql://postgres:pw@db.abc.supabase.co:5432/postgres?sslmode=verify-full", []),
        ("postgresql://postgres.abc:pw@aws-0-sa-east-1.pooler.supabase.com:6543/postgres?sslmode=require", ["6543"]),
        ("postgresql://postgres:pw@db.abc.supabase.co:5432/postgres", ["sslmode=require"]),
        ("postgresql://postgres.abc:pw@aws-0-sa-east-1.pooler.supabase.com:6543/postgres", ["6543", "sslmode"]),
        ("postgresql://postgres:pw@127.0.0.1:5432/postgres", []),
        ("postgresql://postgres@/postgres?host=/tmp/pg", []),
    ],
    ids=["session-pooler", "direct", "transaction-pooler", "no-tls", "both", "loopback", "socket"],
)
def test_database_url_problems_name_the_transaction_pooler_and_missing_tls(url: str, expected: list[str]) -> None:
    from mirage.doctor import url_problems

    problems = url_problems(url)
    assert len(problems) == len(expected)
    for problem, word in zip(problems, expected, strict=True):
        assert word in problem
        assert "pw" not in problem
