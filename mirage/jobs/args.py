"""What every job function shares: argument checks and failing for good when retrying cannot help.

RQ jobs take their arguments as strings (ids from `mirage apply`, the webhook service, `mirage cron`).
A malformed one is a permanent failure with a reason, never a raw database error retried five times.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator

from rq import get_current_job

from mirage.errors import PermanentError

log = logging.getLogger(__name__)


def uuid_arg(name: str, value: object) -> str:
    """`value` as a canonical UUID string, or PermanentError naming the argument."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise PermanentError(f"{name} {value!r} is not a UUID") from None


@contextlib.contextmanager
def permanent_failures_stop_retries() -> Iterator[None]:
    """Inside a job: a PermanentError fails it now, keeping the reason, instead of spending its retries."""
    try:
        yield
    except PermanentError as e:
        if (job := get_current_job()) is not None:
            job.retries_left = 0
        log.error("job failed permanently", extra={"reason": str(e)})
        raise
