"""The metrics page's routes: overview, number, conversation, last messages, operators' QR page, live state,
sign-in and sign-out. Every figure is read inside the viewer's tenant session (mirage/db/page.py)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import segno
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, request_response
from starlette.staticfiles import StaticFiles

from mirage.crypto import CryptoError
from mirage.db import page as q
from mirage.db.viewers import Viewer
from mirage.i18n import LOCALES, t
from mirage.web.pages import auth, charts, fmt
from mirage.web.pages.cache import Page
from mirage.web.pages.figures import Counts, exchanges_per_round, figures, number_states, state_of
from mirage.web.pages.periods import PERIODS, Period, resolve, zone_name
from mirage.web.pages.security import SecurityHeaders
from mirage.web.pages.state import PageState

log = logging.getLogger(__name__)

LIVE_POLL_S = 15
QR_REFRESH_S = 10
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


# Stands in for the viewer's email while a shared page is rendered: random per process, so no text can forge it.
_EMAIL_SLOT = "viewer-" + secrets.token_hex(16)


def _cache_key(ctx: Ctx) -> tuple[Any, ...]:
    """Everything a cached page's HTML depends on besides the viewer's email. Tenant and masking level (role and
    aal: bodies, the operators' link) first, so no entry is ever shared across tenants or masking levels."""
    v, p, url = ctx.viewer, ctx.period, ctx.request.url
    tenant = tuple(sorted((k, str(val)) for k, val in ctx.tenant.items() if k != "now"))
    return (
        v.tenant_id,
        v.role,
        v.aal,
        url.path,
        url.query,
        ctx.lang,
        ctx.theme,
        ctx.zone,
        p.since,
        p.until,
        p.today,
        tenant,
    )


class NotFound(Exception):
    """The id is not one of the viewer's tenant (or not an id at all): 404, never a hint of another tenant."""


class Forbidden(Exception):
    """The viewer is signed in but may not see this page (the QR page without admin + aal2)."""


def _id(value: str | None) -> UUID | None:
    if not value:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise NotFound from None


class Ctx:
    """One request's rendering context: language, theme, tenant, period, and helpers the templates call."""

    def __init__(self, request: Request, viewer: Viewer, tenant: Mapping[str, Any], now: datetime) -> None:
        self.request = request
        self.viewer = viewer
        self.tenant = tenant
        self.now = now
        self.zone = zone_name(tenant.get("timezone"))
        asked = request.query_params.get("lang") or request.cookies.get("mirage_lang")
        default = "pt-BR" if str(tenant.get("locale") or "").lower().startswith("pt") else "en"
        self.lang = asked if asked in LOCALES else default
        theme = request.query_params.get("theme") or request.cookies.get("mirage_theme")
        self.theme = theme if theme in ("dark", "light") else "dark"
        self.period: Period = resolve(request.query_params, self.zone, now)

    def t(self, key: str, **fields: Any) -> str:
        return t("page." + key, self.lang, **fields)

    def n(self, value: float | int | None, digits: int = 0) -> str:
        return fmt.number(value, self.lang, digits)

    def pct(self, part: int, whole: int) -> str:
        return fmt.percent(part, whole, self.lang)

    def dur(self, seconds: float | None) -> str:
        return fmt.duration(seconds, self.lang)

    def when(self, value: datetime | None) -> str:
        return fmt.when(value, self.zone, self.lang)

    def url(self, path: str, **params: Any) -> str:
        """`path` with this page's period (unless overridden) and `params`; None drops a parameter."""
        merged: dict[str, Any] = {**self.period.query(), **params}
        clean = {k: str(v) for k, v in merged.items() if v is not None}
        return path + ("?" + urlencode(clean) if clean else "")

    def here(self, **params: Any) -> str:
        """This page's URL with `params` changed (theme, language, period)."""
        merged = {**dict(self.request.query_params), **params}
        clean = {k: str(v) for k, v in merged.items() if v is not None}
        return self.request.url.path + ("?" + urlencode(clean) if clean else "")

    @property
    def freshness(self) -> str:
        refreshed = self.tenant.get("refreshed_at")
        if refreshed is None:
            return self.t("fresh_never")
        return self.t("fresh_age", age=fmt.age((self.now - refreshed).total_seconds(), self.lang))

    @property
    def periods(self) -> tuple[str, ...]:
        return PERIODS


class Pages:
    """The routes, bound to one PageState and a clock (tests pass a fixed one)."""

    def __init__(self, state: PageState, clock: Clock = _utcnow) -> None:
        self.state = state
        self.clock = clock

    def routes(self) -> list[BaseRoute]:
        secure = SecurityHeaders
        return [
            Route("/", secure(request_response(self._page(self.overview))), methods=["GET"]),
            Route("/numbers/{id}", secure(request_response(self._page(self.number))), methods=["GET"]),
            Route("/conversations/{id}", secure(request_response(self._page(self.conversation))), methods=["GET"]),
            Route("/messages", secure(request_response(self._page(self.messages))), methods=["GET"]),
            Route("/operators/qr", secure(request_response(self._page(self.qr, cached=False))), methods=["GET"]),
            Route("/live.json", secure(request_response(self.live)), methods=["GET"]),
            Route("/signin", secure(request_response(self.signin_form)), methods=["GET"]),
            Route("/signin", secure(request_response(self.signin)), methods=["POST"]),
            Route("/signout", secure(request_response(self.signout)), methods=["POST"]),
            Mount(
                "/static", secure(StaticFiles(packages=[("mirage.web.pages", "static")]), no_store=False), name="static"
            ),
        ]

    # -- plumbing -----------------------------------------------------------------------------------------

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.state.templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status)

    def _page(
        self, handler: Callable[[Request, Ctx, Any], Awaitable[Response]], *, cached: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            now = self.clock()
            viewer = await auth.current_viewer(request, self.state, now)
            if viewer is None:
                return RedirectResponse("/signin", status_code=303)
            pool = await self.state.pool()
            cache = await self.state.cache()
            async with q.viewer_session(pool, viewer) as conn:
                tenant = await q.tenant(conn)
                if tenant is None:  # the tenant was archived or the claims name nothing
                    return RedirectResponse("/signin", status_code=303)
                ctx = Ctx(request, viewer, tenant, now)
                if not (cached and cache.enabled):
                    response = await self._answer(handler, request, ctx, conn)
            if cached and cache.enabled:
                # Rendered once for every viewer of this key (docs/adr/0044-page-cache.md); the viewer's email is
                # the only thing of theirs on a page, so it is drawn as a stand-in and put in per answer.
                async def compute() -> Page:
                    shared = Ctx(request, replace(viewer, email=_EMAIL_SLOT), tenant, now)
                    async with q.viewer_session(pool, viewer) as conn:
                        answer = await self._answer(handler, request, shared, conn)
                    return Page(answer.status_code, bytes(answer.body).decode())

                page = await cache.get(_cache_key(ctx), now, compute)
                html = page.html.replace(_EMAIL_SLOT, str(escape(viewer.email)))
                response = HTMLResponse(html, status_code=page.status)
            for name, value in (("mirage_lang", ctx.lang), ("mirage_theme", ctx.theme)):
                if request.query_params.get(name.removeprefix("mirage_")):
                    response.set_cookie(
                        name,
                        value,
                        max_age=365 * 86400,
                        samesite="lax",
                        secure=self.state.settings.secure_cookies,
                        httponly=True,
                    )
            return response

        return endpoint

    async def _answer(
        self, handler: Callable[[Request, Ctx, Any], Awaitable[Response]], request: Request, ctx: Ctx, conn: Any
    ) -> Response:
        try:
            return await handler(request, ctx, conn)
        except NotFound:
            return self.render("error.html", 404, c=ctx, code=404)
        except Forbidden:
            return self.render("error.html", 403, c=ctx, code=403)

    async def _filters(self, ctx: Ctx, conn: Any) -> dict[str, Any]:
        numbers = await q.numbers(conn)
        conversations = await q.conversations(conn)
        return {"numbers": numbers, "conversations": conversations}

    async def _scope(
        self, ctx: Ctx, conn: Any, *, number: UUID | None = None, conversation: UUID | None = None
    ) -> dict[str, Any]:
        """The figures of one scope (all, one number, one conversation) over the chosen period."""
        p = ctx.period
        rows = await q.facts(
            conn,
            zone=ctx.zone,
            since=p.since,
            until=p.until,
            today=p.today,
            today_start=p.today_start(),
            number=number,
            conversation=conversation,
        )
        figs = figures(rows, p.days)
        labels = [fmt.day(d, ctx.lang) for d, _ in figs.daily]
        chart = charts.bars(
            ctx.t("chart_daily"),
            labels,
            [
                (ctx.t("sent"), "s-sent", [c.sent for _, c in figs.daily]),
                (ctx.t("received"), "s-received", [c.received for _, c in figs.daily]),
            ],
        )
        weekdays = list(fmt.WEEKDAYS.get(ctx.lang, fmt.WEEKDAYS["en"]))
        heat = charts.heatmap(ctx.t("chart_heatmap"), weekdays, figs.heatmap)
        return {"figs": figs, "daily_chart": chart, "heat_chart": heat, "weekdays": weekdays}

    async def _today(self, ctx: Ctx, conn: Any, conversation: UUID | None = None) -> dict[Any, Any]:
        p = ctx.period
        return await q.today(conn, zone=ctx.zone, today=p.today, today_start=p.today_start(), conversation=conversation)

    # -- pages ----------------------------------------------------------------------------------------------

    async def overview(self, request: Request, ctx: Ctx, conn: Any) -> Response:
        scope = await self._scope(ctx, conn)
        numbers = await q.numbers(conn)
        today = await self._today(ctx, conn)
        states = number_states(
            numbers,
            today,
            daily_limit=int(ctx.tenant["daily_limit"]),
            today_date=ctx.period.today,
            period=scope["figs"].per_number,
        )
        today_total = Counts(
            sent=sum(int(r["sent"]) for r in today.values()), received=sum(int(r["received"]) for r in today.values())
        )
        conversations = await q.conversations(conn)
        return self.render(
            "overview.html", c=ctx, states=states, today=today_total, conversations=conversations, **scope
        )

    async def number(self, request: Request, ctx: Ctx, conn: Any) -> Response:
        number_id = _id(request.path_params["id"])
        conversation = _id(request.query_params.get("conversation"))
        numbers = await q.numbers(conn)
        row = next((n for n in numbers if n["id"] == number_id), None)
        conversations = await q.conversations(conn)
        if row is None or (conversation is not None and all(c["id"] != conversation for c in conversations)):
            raise NotFound
        scope = await self._scope(ctx, conn, number=number_id, conversation=conversation)
        today = await self._today(ctx, conn, conversation)
        state = number_states([row], today, daily_limit=int(ctx.tenant["daily_limit"]), today_date=ctx.period.today)[0]
        p = ctx.period
        rounds = await q.rounds(conn, start=p.start(), end=p.end(), number=number_id, conversation=conversation)
        return self.render(
            "scope.html",
            c=ctx,
            kind="number",
            title=row["label"],
            subtitle=row["wa_number"],
            state=state,
            today=Counts(sent=state.sent_today, received=state.received_today),
            rounds=rounds,
            per_round=exchanges_per_round(rounds),
            conversations=conversations,
            numbers=numbers,
            selected_conversation=conversation,
            selected_number=number_id,
            messages_url=ctx.url("/messages", number=number_id, conversation=conversation),
            **scope,
        )

    async def conversation(self, request: Request, ctx: Ctx, conn: Any) -> Response:
        conversation_id = _id(request.path_params["id"])
        conversations = await q.conversations(conn)
        row = next((c for c in conversations if c["id"] == conversation_id), None)
        if row is None or conversation_id is None:
            raise NotFound
        scope = await self._scope(ctx, conn, conversation=conversation_id)
        today = await self._today(ctx, conn, conversation_id)
        p = ctx.period
        rounds = await q.rounds(conn, start=p.start(), end=p.end(), conversation=conversation_id)
        members = set(await q.conversation_numbers(conn, conversation_id))
        numbers = [n for n in await q.numbers(conn) if n["id"] in members]
        states = number_states(
            numbers,
            today,
            daily_limit=int(ctx.tenant["daily_limit"]),
            today_date=p.today,
            period=scope["figs"].per_number,
        )
        return self.render(
            "scope.html",
            c=ctx,
            kind="conversation",
            title=row["name"],
            subtitle=row["mode"],
            state=None,
            states=states,
            today=Counts(
                sent=sum(int(r["sent"]) for r in today.values()),
                received=sum(int(r["received"]) for r in today.values()),
            ),
            rounds=rounds,
            per_round=exchanges_per_round(rounds),
            conversations=conversations,
            numbers=numbers,
            selected_conversation=conversation_id,
            selected_number=None,
            messages_url=ctx.url("/messages", conversation=conversation_id),
            **scope,
        )

    async def messages(self, request: Request, ctx: Ctx, conn: Any) -> Response:
        number = _id(request.query_params.get("number"))
        conversation = _id(request.query_params.get("conversation"))
        numbers = await q.numbers(conn)
        conversations = await q.conversations(conn)
        if number is not None and all(n["id"] != number for n in numbers):
            raise NotFound
        if conversation is not None and all(c["id"] != conversation for c in conversations):
            raise NotFound
        p = ctx.period
        rows = await q.messages(conn, start=p.start(), end=p.end(), number=number, conversation=conversation)
        labels = {n["id"]: n["label"] for n in numbers}
        names = {c["id"]: c["name"] for c in conversations}
        return self.render(
            "messages.html",
            c=ctx,
            rows=rows,
            labels=labels,
            names=names,
            numbers=numbers,
            conversations=conversations,
            selected_number=number,
            selected_conversation=conversation,
        )

    async def qr(self, request: Request, ctx: Ctx, conn: Any) -> Response:
        if not ctx.viewer.operator:
            raise Forbidden
        numbers = {n["id"]: n for n in await q.numbers(conn)}
        cards = []
        for s in await q.qr_sessions(conn):  # RLS: empty unless a live admin membership with aal2
            number = numbers.get(s["number_id"])
            if number is None:
                continue
            svg, code = None, None
            try:
                if s["last_qr_enc"] is not None:
                    raw = self.state.ring().decrypt(
                        s["last_qr_enc"], table="t_sessions", row_id=s["id"], field="last_qr"
                    )
                    drawing = segno.make(raw, error="m").svg_inline(scale=5, omitsize=True, dark="#0b0b10")
                    svg = Markup(drawing)  # noqa: S704  (segno's own SVG: paths only, no text from the QR)
                if s["pairing_code_enc"] is not None:
                    code = self.state.ring().decrypt(
                        s["pairing_code_enc"], table="t_sessions", row_id=s["id"], field="pairing_code"
                    )
            except CryptoError:
                log.warning("a session's QR could not be decrypted", extra={"session_id": str(s["id"])})
            state, _ = state_of(number)
            cards.append({"number": number, "state": state, "session": s, "svg": svg, "code": code})
        return self.render("qr.html", c=ctx, cards=cards, refresh_s=QR_REFRESH_S)

    async def live(self, request: Request) -> Response:
        """Live state for the page's small poller: each number's state and today's counters, no figures else."""
        now = self.clock()
        viewer = await auth.current_viewer(request, self.state, now)
        if viewer is None:
            return JSONResponse({"ok": False}, status_code=401)
        async with q.viewer_session(await self.state.pool(), viewer) as conn:
            tenant = await q.tenant(conn)
            if tenant is None:
                return JSONResponse({"ok": False}, status_code=401)
            ctx = Ctx(request, viewer, tenant, now)
            numbers = await q.numbers(conn)
            today = await self._today(ctx, conn)
        states = number_states(numbers, today, daily_limit=int(tenant["daily_limit"]), today_date=ctx.period.today)
        return JSONResponse(
            {
                "ok": True,
                "numbers": {
                    str(s.id): {
                        "state": s.state,
                        "label": ctx.t("state_" + s.state),
                        "reason": s.reason,
                        "sent_today": ctx.n(s.sent_today),
                        "received_today": ctx.n(s.received_today),
                        "headroom": ctx.n(s.headroom),
                    }
                    for s in states
                },
                "sent_today": ctx.n(sum(s.sent_today for s in states)),
                "received_today": ctx.n(sum(s.received_today for s in states)),
            }
        )

    # -- sign-in ------------------------------------------------------------------------------------------

    def _signin_page(self, request: Request, status: int = 200, error: str | None = None) -> HTMLResponse:
        # No tenant yet: the language asked for, else the browser's (pt* -> pt-BR), else English.
        lang = request.query_params.get("lang") or request.cookies.get("mirage_lang") or ""
        if lang not in LOCALES:
            lang = "pt-BR" if request.headers.get("accept-language", "").lower().startswith("pt") else "en"
        theme = request.cookies.get("mirage_theme")
        return self.render(
            "signin.html",
            status,
            lang=lang,
            theme=theme if theme in ("dark", "light") else "dark",
            tr=lambda key, **f: t("page." + key, lang, **f),
            error=error,
        )

    async def signin_form(self, request: Request) -> Response:
        return self._signin_page(request)

    async def signin(self, request: Request) -> Response:
        if not auth.same_origin(request):
            return self._signin_page(request, 403, "signin_error")
        client = request.client.host if request.client else "unknown"
        if not await auth.allow_attempt(self.state, client):
            return self._signin_page(request, 429, "signin_limited")
        token = await auth.form_token(request)
        cookie = await auth.sign_in(self.state, token, self.clock())
        if cookie is None:
            log.info("sign-in refused")
            return self._signin_page(request, 401, "signin_error")
        response = RedirectResponse("/", status_code=303)
        auth.set_cookie(response, cookie, secure=self.state.settings.secure_cookies)
        return response

    async def signout(self, request: Request) -> Response:
        if auth.same_origin(request):
            await auth.sign_out(self.state, request, self.clock())
        response = RedirectResponse("/signin", status_code=303)
        auth.clear_cookie(response, secure=self.state.settings.secure_cookies)
        return response
