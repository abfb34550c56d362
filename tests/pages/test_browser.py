"""A real browser: headless Chromium signs in through a sign-in link (the token in the URL fragment, moved into
a POST by signin.js), loads every page, takes a screenshot of each (desktop, and the overview on a phone),
and there are no console errors (CSP violations included) and no failed requests.

Screenshots: `.mirage-test/screenshots/` (MIRAGE_SCREENSHOTS overrides it). Skipped, with the reason, when
no `chromium` is on PATH (`.ci/run` installs Debian's package)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mirage.settings import Settings
from mirage.web.app import create_app
from tests.conftest import TEST_STATE_DIR
from tests.pages.browser import Browser, chromium
from tests.pages.conftest import access_token, link_token
from tests.pages.helpers import Fleet, refresh, seed_fleet

CHROMIUM = chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: apt-get install -y chromium (.ci/run does)"),
]
SCREENSHOTS = Path(os.environ.get("MIRAGE_SCREENSHOTS") or TEST_STATE_DIR / "screenshots")


class Recorder:
    """Every request the browser makes, with the status it got."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"], message["status"]))
            await send(message)

        await self.app(scope, receive, record)


class Server:
    def __init__(self, app: ASGIApp) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def served(db: Any) -> Iterator[tuple[str, Recorder, Fleet]]:
    fleet = seed_fleet(db, "browser", days=30, rounds_per_day=6, locale="pt-BR")
    db.commit()
    refresh(db)
    recorder = Recorder(create_app(Settings.from_env()))
    with Server(recorder) as server:
        yield f"http://127.0.0.1:{server.port}", recorder, fleet


def _clean(recorder: Recorder) -> None:
    failed = [r for r in recorder.seen if r[2] >= 400]
    assert failed == [], f"failed requests: {failed}"


PAGES = {
    "overview": "/?period=7d",
    "number": "/numbers/{a}?period=30d",
    "conversation": "/conversations/{main}?period=30d",
    "messages": "/messages?period=7d",
    "overview-light": "/?period=7d&theme=light",
}


def test_every_page_loads_in_chromium_without_console_errors_or_failed_requests(
    db: Any, tmp_path: Path, served: tuple[str, Recorder, Fleet]
) -> None:
    base, recorder, fleet = served
    assert CHROMIUM is not None
    browser = Browser(CHROMIUM, tmp_path / "profile")
    token = link_token(db, fleet, "member")
    signed = browser.dom(f"{base}/signin#{token}", budget_ms=6000)
    assert signed.console == []
    assert 'data-figure="sent_today"' in signed.dom, f"the sign-in link did not land on the overview: {recorder.seen}"
    assert ("POST", "/signin", 303) in recorder.seen
    assert all(token not in path for _, path, _ in recorder.seen)  # the fragment never reached the server
    for name, template in PAGES.items():
        url = base + template.format(a=fleet.numbers["a"], main=fleet.conversations["main"])
        visit = browser.screenshot(url, SCREENSHOTS / f"{name}.png")
        assert visit.console == [], f"{name}: {visit.console}"
        dom = browser.dom(url)
        assert "<h1" in dom.dom and dom.console == []
    phone = browser.screenshot(
        base + "/?period=7d&theme=dark", SCREENSHOTS / "overview-phone.png", width=390, height=1600
    )
    assert phone.console == []
    _clean(recorder)
    paths = {p for _, p, _ in recorder.seen}
    assert {"/static/page.css", "/static/live.js", "/static/signin.js", "/static/icon.svg"} <= paths


def test_signin_and_qr_pages_render_in_chromium(db: Any, tmp_path: Path, served: tuple[str, Recorder, Fleet]) -> None:
    base, recorder, fleet = served
    assert CHROMIUM is not None
    browser = Browser(CHROMIUM, tmp_path / "profile")
    visit = browser.screenshot(f"{base}/signin", SCREENSHOTS / "signin.png", width=1280, height=900)
    assert visit.console == []
    # an operator: a Supabase access token with aal2, exchanged for a session through the sign-in form
    token = access_token(fleet, "admin", "aal2")
    signed = browser.dom(f"{base}/signin#{token}", budget_ms=6000)
    assert signed.console == [] and 'data-figure="sent_today"' in signed.dom
    visit = browser.screenshot(f"{base}/operators/qr", SCREENSHOTS / "qr.png", width=1280, height=1100)
    assert visit.console == []
    assert "WZYX1234" in browser.dom(f"{base}/operators/qr").dom
    _clean(recorder)


def test_a_revoked_link_lands_on_the_sign_in_page_in_chromium(
    db: Any, tmp_path: Path, served: tuple[str, Recorder, Fleet]
) -> None:
    base, _, fleet = served
    assert CHROMIUM is not None
    browser = Browser(CHROMIUM, tmp_path / "profile")
    token = link_token(db, fleet, "viewer")
    db.execute("update t_viewer_links set revoked_at = now()")
    db.commit()
    visit = browser.dom(f"{base}/signin#{token}", budget_ms=6000)
    assert 'id="signin"' in visit.dom and 'role="alert"' in visit.dom
    assert 'data-figure="sent_today"' not in visit.dom
