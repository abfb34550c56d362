"""The follow-up the webhook service enqueues after it commits a message event: the conversation runtime's
`on_message` job, named by its path. The service imports only this (and `queues`), never the worker side, which
loads the text generator and the OpenAI SDK: seconds of CPU on the first message event and tens of megabytes in
a process that only stores events."""

from __future__ import annotations

import logging

from mirage.jobs import queues

log = logging.getLogger(__name__)

ON_MESSAGE_JOB = "mirage.jobs.rounds.on_message"


def schedule_on_message(message_id: str) -> bool:
    """Enqueue `on_message` for a stored message event (called by the webhook service, off its event loop)."""
    try:
        return queues.enqueue_unique(queues.ROUNDS, ON_MESSAGE_JOB, job_id=f"onmsg:{message_id}", args=[message_id])
    except Exception as e:  # Redis down: the sweeper finds messages whose follow-up never ran
        log.warning("could not enqueue on_message", extra={"message_id": message_id, "error": repr(e)[:200]})
        return False
