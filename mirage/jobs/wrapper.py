"""The one wrapper every RQ job function wears: log context, correlation id, Temporary / Permanent errors.

    @job
    def provision_number(number_id: str) -> dict[str, str | None]: ...

Around each call it binds the log context the producer stored in `job.meta["log_context"]`
(mirage.jobs.queues.enqueue_unique) with the producer's correlation id, plus this job's name and id, so every
line the job logs traces back to the request, apply or cron tick that caused it. A `TemporaryError` is
logged and re-raised: RQ retries it with the queue's backoff (`DEFAULT_RETRY`). A `PermanentError` (or a
malformed argument, see `uuid_arg`) fails the job now, keeping the reason, instead of spending its retries.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from rq import get_current_job

from mirage.errors import TemporaryError
from mirage.jobs.args import permanent_failures_stop_retries
from mirage.logs import log_context

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger(__name__)

MARK = "__mirage_job__"


def job(func: Callable[P, R]) -> Callable[P, R]:
    """Wrap an RQ job function (see the module docstring); the wrapped function is marked for the tests."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        current = get_current_job()
        context: dict[str, Any] = dict(current.meta.get("log_context") or {}) if current is not None else {}
        correlation_id = context.pop("correlation_id", None)
        context.pop("job_id", None)  # the producing job's id; this job has its own
        context.update(job=func.__name__, job_id=current.id if current is not None else None)
        with log_context(correlation_id, **context), permanent_failures_stop_retries():
            try:
                return func(*args, **kwargs)
            except TemporaryError as e:
                retries = current.retries_left if current is not None else None
                log.warning("job failed, will retry", extra={"reason": str(e), "retries_left": retries})
                raise

    setattr(wrapper, MARK, True)
    return wrapper


def is_job(func: object) -> bool:
    """Whether `func` wears the job wrapper."""
    return bool(getattr(func, MARK, False))
