"""The short cache of rendered pages (MIRAGE_PAGE_CACHE_S, docs/adr/0044-page-cache.md): never shared across
tenants or masking levels, new figures once the TTL passes (the page's clock moves, nobody sleeps), off at 0,
and one computation for viewers arriving together."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from mirage.settings import Settings
from mirage.web.app import create_app
from mirage.web.pages.cache import Page, PageCache
from tests.pages.conftest import access_token, bearer, link_token, sign_in
from tests.pages.helpers import Fleet, _message, figures, refresh, seed_fleet


@pytest.fixture
def two(db: Any) -> tuple[Fleet, Fleet]:
    a = seed_fleet(db, "alfa", days=3)
    b = seed_fleet(db, "beta", days=3, hostile={"label": "Beta-only label", "body": "beta secret body"})
    db.commit()
    refresh(db)
    return a, b


def _get(client: TestClient, db: Any, fleet: Fleet, who: str, path: str) -> str:
    """`path` as `who`: "viewer-link" / "member-link" (a sign-in link, aal1) or "ROLE-aal1|aal2" (an access token)."""
    role, how = who.split("-")
    if how == "link":
        assert sign_in(client, link_token(db, fleet, role)).status_code == 303
        response = client.get(path)
    else:
        client.cookies.clear()
        response = client.get(path, headers=bearer(access_token(fleet, role, how)))
    assert response.status_code == 200
    return response.text


@pytest.mark.parametrize(
    ("first", "then", "path"),
    [
        (("a", "admin-aal2"), ("b", "admin-aal2"), "/"),
        (("a", "admin-aal2"), ("b", "admin-aal2"), "/messages"),
        (("a", "viewer-link"), ("b", "viewer-link"), "/messages?period=30d"),
        (("a", "admin-aal2"), ("a", "admin-aal1"), "/messages"),
        (("a", "member-aal2"), ("a", "member-link"), "/messages"),
        (("a", "member-aal2"), ("a", "viewer-link"), "/messages?period=7d"),
        (("a", "admin-aal2"), ("a", "viewer-link"), "/"),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else v,
)
def test_a_cached_page_never_reaches_another_tenant_or_a_masked_viewer(
    db: Any, client: TestClient, two: tuple[Fleet, Fleet], first: tuple[str, str], then: tuple[str, str], path: str
) -> None:
    fleets = {"a": two[0], "b": two[1]}
    seen = _get(client, db, fleets[first[0]], first[1], path)
    text = _get(client, db, fleets[then[0]], then[1], path)
    fleet, who = fleets[then[0]], then[1]
    other = two[0] if fleet is two[1] else two[1]
    assert other.labels["a"] not in text and str(other.numbers["a"]) not in text
    assert fleet.labels["a"] in text
    assert fleet.emails[who.split("-")[0]] in text
    first_email = fleets[first[0]].emails[first[1].split("-")[0]]
    if first_email != fleet.emails[who.split("-")[0]]:
        assert first_email not in text
    if path.startswith("/messages"):
        masked = not who.endswith("aal2")
        body = "beta secret body" if fleet is two[1] else "mensagem "
        assert (body in text) is not masked and ("••••••" in text) is masked
        assert "beta secret body" not in text or fleet is two[1]
        if first[1].endswith("aal2"):
            assert ("beta secret body" if first[0] == "b" else "mensagem ") in seen  # the first got the bodies
    if who != "admin-aal2":
        assert 'href="/operators/qr"' not in text


class MovingClock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock() -> MovingClock:
    return MovingClock()


@pytest.fixture
def moving_client(database_url: str, page_cache_s: float | None, clock: MovingClock) -> Iterator[TestClient]:
    settings = Settings.from_env().model_copy(update={"page_cache_s": page_cache_s})
    app = create_app(settings, page_clock=clock)
    with TestClient(app, base_url="http://mirage.test", follow_redirects=False) as c:
        yield c


def _today_message(db: Any, fleet: Fleet, n: int) -> None:
    with db.transaction():
        row = db.execute("select id from t_rounds where tenant_id = %s limit 1", (fleet.tenant_id,)).fetchone()
        sent = datetime.now(UTC) - timedelta(minutes=1)
        _message(db, fleet, row["id"], "a", "b", "out", "sent", sent, "tempo", "oi", f"WACACHE{n}", 99000 + n)


@pytest.mark.parametrize("page_cache_s", [15.0, 0.0], ids=["cache-15s", "cache-off"])
@pytest.mark.parametrize("path", ["/", "/numbers/{a}"])
def test_new_figures_show_once_the_cache_ttl_passes_or_at_once_with_the_cache_off(
    db: Any, moving_client: TestClient, clock: MovingClock, page_cache_s: float, path: str
) -> None:
    fleet = seed_fleet(db, "padaria", days=4)
    db.commit()
    refresh(db)
    url = path.format(a=fleet.numbers["a"])
    assert sign_in(moving_client, link_token(db, fleet, "viewer")).status_code == 303
    before = int(figures(moving_client.get(url).text)["sent_today"])
    _today_message(db, fleet, 1)
    live = moving_client.get("/live.json").json()
    live_sent = live["sent_today"] if path == "/" else live["numbers"][str(fleet.numbers["a"])]["sent_today"]
    assert live_sent == str(before + 1)  # the live state: at once
    clock.offset = timedelta(seconds=page_cache_s / 2)
    within = int(figures(moving_client.get(url).text)["sent_today"])
    assert within == (before if page_cache_s else before + 1)
    clock.offset = timedelta(seconds=page_cache_s + 1)
    assert int(figures(moving_client.get(url).text)["sent_today"]) == before + 1


@pytest.mark.parametrize("page_cache_s", [15.0])
def test_a_refresh_of_the_views_shows_at_once_despite_the_cache(
    db: Any, moving_client: TestClient, page_cache_s: float
) -> None:
    fleet = seed_fleet(db, "padaria", days=4)
    db.commit()
    refresh(db)
    assert sign_in(moving_client, link_token(db, fleet, "viewer")).status_code == 303
    first = moving_client.get("/").text
    db.execute("update mirage_meta.metrics_refreshes set refreshed_at = now() - interval '7 minutes'")
    db.commit()
    assert moving_client.get("/").text != first  # the refresh time is part of the key: new entry


def test_viewers_arriving_together_compute_a_page_once() -> None:
    async def go() -> tuple[list[Page], int]:
        cache, calls, gate = PageCache(15), [0], asyncio.Event()
        now = datetime.now(UTC)

        async def compute() -> Page:
            calls[0] += 1
            await gate.wait()
            return Page(200, f"<p>{calls[0]}</p>")

        waiting = [asyncio.create_task(cache.get(("t", "/"), now, compute)) for _ in range(20)]
        await asyncio.sleep(0)
        gate.set()
        pages = await asyncio.gather(*waiting)
        later = await cache.get(("t", "/"), now + timedelta(seconds=14), compute)
        return [*pages, later], calls[0]

    pages, calls = asyncio.run(go())
    assert calls == 1 and {p.html for p in pages} == {"<p>1</p>"}


@pytest.mark.parametrize("status", [404, 500])
def test_only_successful_pages_are_kept_and_failures_reach_every_waiter(status: int) -> None:
    async def go() -> tuple[int, int]:
        cache, calls = PageCache(15), [0]
        now = datetime.now(UTC)

        async def compute() -> Page:
            calls[0] += 1
            await asyncio.sleep(0)
            if status == 500:
                raise RuntimeError("the database went away")
            return Page(status, "not found")

        results = await asyncio.gather(*(cache.get("k", now, compute) for _ in range(5)), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) if status == 500 else r.status == status for r in results)
        await asyncio.gather(cache.get("k", now, compute), return_exceptions=True)
        return calls[0], len(results)

    calls, _ = asyncio.run(go())
    assert calls == 2  # once for the five together, once more afterwards: nothing was kept
