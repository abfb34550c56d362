"""The read-only metrics page: server-rendered HTML for tenants' viewers (docs/ui.md, docs/adr/0032-metrics-page.md).

`build(settings)` returns the routes the service adds after its webhook and health routes, and the state whose
`aclose()` the service's lifespan awaits. Every route answers with the security headers of `security.py`.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from mirage.settings import Settings
from mirage.web.pages.state import PageState
from mirage.web.pages.views import Clock, Pages, _utcnow


def build(settings: Settings, clock: Clock = _utcnow) -> tuple[list[BaseRoute], PageState]:
    state = PageState(settings)
    return Pages(state, clock).routes(), state


__all__ = ["Clock", "PageState", "build"]
