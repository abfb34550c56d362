"""Who sees what: sign-in links and sessions, Supabase access tokens, tenant isolation (404 for another tenant's
ids), masked bodies below aal2, the operators' QR page, the security headers and the sign-in rate limit."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from mirage.settings import Settings
from mirage.web.app import create_app
from tests.pages.conftest import access_token, bearer, link_token, sign_in, unknown_id
from tests.pages.helpers import Fleet, refresh, seed_fleet

PAGES = ["/", "/numbers/{a}", "/conversations/{main}", "/messages", "/numbers/{a}?conversation={main}"]


@pytest.fixture
def two(db: Any) -> tuple[Fleet, Fleet]:
    a = seed_fleet(db, "alfa", days=3)
    b = seed_fleet(db, "beta", days=3, hostile={"label": "Beta-only label", "body": "beta secret body"})
    db.commit()
    refresh(db)
    return a, b


def _path(template: str, fleet: Fleet) -> str:
    return template.format(a=fleet.numbers["a"], main=fleet.conversations["main"])


# -- tenant isolation ----------------------------------------------------------------------------------------

FOREIGN = [
    "/numbers/{a}",
    "/numbers/{c}",
    "/conversations/{main}",
    "/messages?number={a}",
    "/messages?conversation={main}",
    "/numbers/{own_a}?conversation={main}",
]


@pytest.mark.parametrize("how", ["link", "token"])
@pytest.mark.parametrize("template", FOREIGN)
def test_a_viewer_asking_for_another_tenants_ids_gets_404(
    db: Any, client: TestClient, two: tuple[Fleet, Fleet], as_viewer: Any, how: str, template: str
) -> None:
    a, b = two
    path = template.format(a=b.numbers["a"], c=b.numbers["c"], main=b.conversations["main"], own_a=a.numbers["a"])
    if how == "link":
        response = as_viewer(a, "member").get(path)
    else:
        response = client.get(path, headers=bearer(access_token(a, "admin", "aal2")))
    assert response.status_code == 404
    assert "Beta-only label" not in response.text and str(b.numbers["a"]) not in response.text.split("<main", 1)[1]


@pytest.mark.parametrize(
    "path",
    ["/numbers/not-a-uuid", "/numbers/{x}", "/conversations/{x}", "/messages?number={x}", "/messages?conversation=1"],
)
def test_unknown_or_malformed_ids_are_404(two: tuple[Fleet, Fleet], as_viewer: Any, path: str) -> None:
    assert as_viewer(two[0]).get(path.format(x=unknown_id())).status_code == 404


@pytest.mark.parametrize("template", PAGES)
def test_a_tenants_pages_never_show_another_tenants_rows(
    two: tuple[Fleet, Fleet], as_viewer: Any, template: str
) -> None:
    a, b = two
    text = as_viewer(a, "admin").get(_path(template, a), params={"period": "30d"}).text
    for foreign in ("Beta-only label", "beta secret body", str(b.numbers["a"]), str(b.conversations["main"])):
        assert foreign not in text


def test_live_json_lists_only_the_viewers_numbers(two: tuple[Fleet, Fleet], as_viewer: Any) -> None:
    a, _ = two
    live = as_viewer(a).get("/live.json").json()
    assert set(live["numbers"]) == {str(n) for n in a.numbers.values()}


def test_qr_page_shows_only_the_operators_tenant(client: TestClient, two: tuple[Fleet, Fleet]) -> None:
    a, b = two
    text = client.get("/operators/qr", headers=bearer(access_token(a, "admin", "aal2"))).text
    assert a.labels["c"] in text and "Beta-only label" not in text and str(b.numbers["c"]) not in text


# -- signing in ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template", [*PAGES, "/operators/qr"])
def test_without_a_session_every_page_sends_to_sign_in(
    client: TestClient, two: tuple[Fleet, Fleet], template: str
) -> None:
    response = client.get(_path(template, two[0]))
    assert response.status_code == 303 and response.headers["location"] == "/signin"


def test_live_json_without_a_session_is_401(client: TestClient) -> None:
    assert client.get("/live.json").status_code == 401


def test_sign_in_link_sets_a_hardened_cookie_and_redirects_to_a_clean_url(
    db: Any, client: TestClient, two: tuple[Fleet, Fleet]
) -> None:
    token = link_token(db, two[0])
    response = sign_in(client, token)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("mirage_session=") and token not in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie and "Secure" not in cookie
    assert client.get("/").status_code == 200


def test_secure_cookies_marks_the_session_cookie_secure(
    db: Any, two: tuple[Fleet, Fleet], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECURE_COOKIES", "true")
    with TestClient(create_app(Settings.from_env()), base_url="https://mirage.test", follow_redirects=False) as c:
        response = sign_in(c, link_token(db, two[0]))
        assert "; Secure" in response.headers["set-cookie"]


def test_only_the_tokens_hash_is_stored(db: Any, two: tuple[Fleet, Fleet], client: TestClient) -> None:
    token = link_token(db, two[0])
    sign_in(client, token)
    cookie = client.cookies["mirage_session"]
    dump = str(db.execute("select * from t_viewer_links").fetchall()) + str(
        db.execute("select * from t_viewer_sessions").fetchall()
    )
    assert token not in dump and cookie not in dump
    assert hashlib.sha256(token.encode()).hexdigest() in dump and hashlib.sha256(cookie.encode()).hexdigest() in dump


def test_sign_in_never_logs_the_token(db: Any, client: TestClient, two: tuple[Fleet, Fleet], caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    token = link_token(db, two[0])
    sign_in(client, token)
    sign_in(client, token + "x")
    assert token not in caplog.text


def test_an_expired_link_shows_the_sign_in_page(db: Any, client: TestClient, two: tuple[Fleet, Fleet]) -> None:
    token = link_token(db, two[0])
    db.execute("update t_viewer_links set expires_at = now() - interval '1 second'")
    db.commit()
    response = sign_in(client, token)
    assert (
        response.status_code == 401 and "has expired or was revoked" in response.text and 'id="signin"' in response.text
    )


def test_a_revoked_link_and_its_sessions_stop_working(db: Any, client: TestClient, two: tuple[Fleet, Fleet]) -> None:
    from click.testing import CliRunner

    from mirage.cli import cli

    a = two[0]
    token = link_token(db, a)
    assert sign_in(client, token).status_code == 303
    assert client.get("/").status_code == 200
    result = CliRunner().invoke(cli, ["--lang", "en", "viewers", "revoke", a.slug, a.emails["viewer"]])
    assert result.exit_code == 0, result.output
    assert "revoked 1 link(s) and 1 session(s)" in result.output
    assert client.get("/").headers["location"] == "/signin"  # the open session ended at once
    assert sign_in(client, token).status_code == 401


def test_a_session_ends_with_its_link(db: Any, client: TestClient, two: tuple[Fleet, Fleet]) -> None:
    assert sign_in(client, link_token(db, two[0])).status_code == 303
    db.execute("update t_viewer_links set expires_at = now() - interval '1 second'")
    db.commit()
    assert client.get("/").status_code == 303


def test_sign_out_ends_the_session_for_good(db: Any, client: TestClient, two: tuple[Fleet, Fleet]) -> None:
    sign_in(client, link_token(db, two[0]))
    cookie = client.cookies["mirage_session"]
    response = client.post("/signout")
    assert response.status_code == 303 and 'mirage_session=""' in response.headers["set-cookie"]
    client.cookies.set("mirage_session", cookie)
    assert client.get("/").status_code == 303


def test_a_member_removed_from_the_yaml_loses_the_page(db: Any, client: TestClient, two: tuple[Fleet, Fleet]) -> None:
    a = two[0]
    sign_in(client, link_token(db, a, "member"))
    db.execute("delete from t_users where id = %s", (a.users["member"],))
    db.commit()
    assert client.get("/").status_code == 303


@pytest.mark.parametrize(
    "headers", [{"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}, {"origin": "null"}]
)
def test_sign_in_from_another_site_is_refused(
    db: Any, client: TestClient, two: tuple[Fleet, Fleet], headers: dict[str, str]
) -> None:
    token = link_token(db, two[0])
    response = client.post("/signin", data={"token": token}, headers=headers)
    assert response.status_code == 403 and "set-cookie" not in response.headers


def test_sign_in_is_rate_limited_per_address(db: Any, client: TestClient, two: tuple[Fleet, Fleet]) -> None:
    codes = [client.post("/signin", data={"token": f"guess-{i}"}).status_code for i in range(10)]
    assert codes == [401] * 10
    token = link_token(db, two[0])
    response = client.post("/signin", data={"token": token})
    assert response.status_code == 429 and "Too many attempts" in response.text


# -- Supabase access tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"_secret": "another-projects-secret-" + "y" * 32},
        {"exp": 1_000_000},
        {"aud": "anon"},
        {"app.tenant_id": "not-a-uuid"},
        {"app.tenant_id": None},
        {"sub": "00000000-0000-0000-0000-000000000001"},
    ],
    ids=["bad-signature", "expired", "wrong-aud", "malformed-tenant", "no-tenant", "not-a-member"],
)
def test_a_bad_access_token_is_refused(client: TestClient, two: tuple[Fleet, Fleet], overrides: dict[str, Any]) -> None:
    token = access_token(two[0], "admin", "aal2", **overrides)
    assert client.get("/", headers=bearer(token)).status_code == 303


def test_an_access_token_can_be_exchanged_for_a_session(client: TestClient, two: tuple[Fleet, Fleet]) -> None:
    response = sign_in(client, access_token(two[0], "admin", "aal2"))
    assert response.status_code == 303
    assert client.get("/operators/qr").status_code == 200  # the session keeps the token's aal2


# -- bodies and the QR page ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "aal", "sees"),
    [
        ("viewer", "link", False),
        ("member", "link", False),
        ("admin", "aal1", False),
        ("member", "aal2", True),
        ("admin", "aal2", True),
    ],
)
def test_bodies_are_shown_only_with_mfa(
    db: Any, client: TestClient, two: tuple[Fleet, Fleet], as_viewer: Any, role: str, aal: str, sees: bool
) -> None:
    a = two[0]
    if aal == "link":
        text = as_viewer(a, role).get("/messages").text
    else:
        text = client.get("/messages", headers=bearer(access_token(a, role, aal))).text
    assert ("mensagem " in text) is sees
    assert ("••••••" in text) is not sees
    assert text.count("<tr data-id=") == min(100, a.messages)


@pytest.mark.parametrize(
    ("role", "aal"), [("viewer", "link"), ("admin", "link"), ("admin", "aal1"), ("member", "aal2")]
)
def test_qr_page_is_for_admins_with_mfa_only(
    client: TestClient, two: tuple[Fleet, Fleet], as_viewer: Any, role: str, aal: str
) -> None:
    a = two[0]
    if aal == "link":
        response = as_viewer(a, role).get("/operators/qr")
    else:
        response = client.get("/operators/qr", headers=bearer(access_token(a, role, aal)))
    assert response.status_code == 403
    assert "WZYX1234" not in response.text


def test_qr_page_shows_the_qr_and_pairing_code_and_refreshes(
    client: TestClient, two: tuple[Fleet, Fleet], caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    response = client.get("/operators/qr", headers=bearer(access_token(two[0], "admin", "aal2")))
    assert response.status_code == 200
    assert "WZYX1234" in response.text and "<svg" in response.text.split("qr-img", 1)[1]
    assert "QRSECRET" not in response.text and "QRSECRET" not in caplog.text  # only the drawing, never the string
    assert '<meta http-equiv="refresh" content="10">' in response.text


# -- headers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/messages", "/signin", "/static/page.css", "/live.json", "/numbers/{a}"])
def test_every_page_answer_carries_the_security_headers(two: tuple[Fleet, Fleet], as_viewer: Any, path: str) -> None:
    response = as_viewer(two[0]).get(_path(path, two[0]))
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    if not path.startswith("/static"):
        assert response.headers["cache-control"] == "no-store"


def test_webhook_routes_keep_their_json_answers(client: TestClient) -> None:
    assert client.get("/healthz").json()["ok"] is True
    assert client.get("/nowhere").headers["content-type"].startswith("application/json")


def test_link_ttl_is_bounded(db: Any, two: tuple[Fleet, Fleet]) -> None:
    from click.testing import CliRunner

    from mirage.cli import cli

    a = two[0]
    result = CliRunner().invoke(cli, ["viewers", "link", a.slug, a.emails["viewer"], "--ttl", "400d"])
    assert result.exit_code == 2 and "at most 90d" in result.output
    result = CliRunner().invoke(
        cli,
        ["--lang", "en", "viewers", "link", a.slug, a.emails["viewer"], "--ttl", "2h", "--url", "https://m.example/"],
    )
    assert result.exit_code == 0, result.output
    url = next(line for line in result.output.splitlines() if line.startswith("https://"))
    token = url.split("#", 1)[1]
    assert url.startswith("https://m.example/signin#") and len(token) >= 40
    row = db.execute("select expires_at - created_at as ttl from t_viewer_links").fetchone()
    assert timedelta(hours=1, minutes=59) < row["ttl"] <= timedelta(hours=2, seconds=5)


def test_link_for_someone_not_in_the_yaml_is_refused(two: tuple[Fleet, Fleet]) -> None:
    from click.testing import CliRunner

    from mirage.cli import cli

    result = CliRunner().invoke(cli, ["viewers", "link", two[0].slug, "stranger@example.com"])
    assert result.exit_code == 2 and "not a member or viewer" in result.output
