"""A short cache of rendered pages, per server process (docs/adr/0044-page-cache.md, docs/ui.md#speed).

A page is computed once per key and TTL and shared by every viewer asking for the same key meanwhile; viewers
arriving while it is computed wait for that one computation (single flight). The key is built by the caller
from everything that changes the output — tenant, masking level, path, query, language, theme, period, the
views' refresh time — so an entry is never shared across tenants or masking levels. Expiry follows the page's
clock (the one `now` of the request), so tests move time instead of sleeping.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_ENTRIES = 512  # query strings are the viewer's to choose: the oldest entries go beyond this


@dataclass(frozen=True)
class Page:
    """A computed answer: status and HTML (only 200s are kept past their computation)."""

    status: int
    html: str


class PageCache:
    """Entries and in-flight computations of one event loop (futures belong to the loop that made them)."""

    def __init__(self, ttl_s: float, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = timedelta(seconds=ttl_s)
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[datetime, Page]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Future[Page]] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl > timedelta(0)

    async def get(self, key: Hashable, now: datetime, compute: Callable[[], Awaitable[Page]]) -> Page:
        """The fresh entry of `key`, else the computation already under way, else a new one (kept if 200)."""
        found = self._entries.get(key)
        if found is not None:
            if found[0] > now:
                return found[1]
            del self._entries[key]
        waiting = self._inflight.get(key)
        if waiting is not None:
            try:
                return await asyncio.shield(waiting)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not waiting.cancelled() or (task is not None and task.cancelling()):
                    raise  # this request itself was cancelled
                return await self.get(key, now, compute)  # the computing request went away: compute here
        future: asyncio.Future[Page] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            page = await compute()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        else:
            future.set_result(page)
            if page.status == 200:
                self._keep(key, now, page)
            return page
        finally:
            del self._inflight[key]

    def _keep(self, key: Hashable, now: datetime, page: Page) -> None:
        self._entries[key] = (now + self.ttl, page)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
