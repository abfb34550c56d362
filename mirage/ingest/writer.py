"""Group commit: the webhooks waiting at one moment are written in one transaction, with one disk flush.

A 200 means the event is committed (Evolution may not retry it), and a durable commit costs a flush of the WAL
(0.4 ms on the bench machine's disk, several ms on others). Committing each request on its own puts concurrent
requests in line behind each other's flushes; here one writer task on the event loop takes the events waiting
(up to `max_batch`), pipelines their statements on one pooled connection (BEGIN, the statements and COMMIT in
one round trip), commits once and wakes each request with its own outcome. While a batch commits, the loop keeps
serving requests, whose events form the next batch. No thread: the requests and the writes share the event loop,
so they never contend for the GIL. If the batch fails on an event's data, it is rolled back and each of its events
is written alone (`ingest_event`, with its own fallback), so one bad event never costs another its storage. If
Postgres itself is down, every waiting request gets StorageUnavailable (503: Evolution retries).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.errors import DeadlockDetected, SerializationFailure
from psycopg_pool import AsyncConnectionPool

from mirage.crypto import Keyring
from mirage.db.evolution_sessions import SessionAuth
from mirage.db.sessions import async_service_session
from mirage.ingest import store
from mirage.ingest.pipeline import (
    EVENT_FAILURES,
    POOL_TIMEOUT_S,
    StorageUnavailable,
    first_line,
    ingest_event,
)
from mirage.ingest.store import Outcome, Statement
from mirage.integrations.evolution.envelope import Envelope

log = logging.getLogger(__name__)

# Big enough to share a WAL flush among many events, small enough that while Postgres writes one batch the loop
# has the requests of the next one to work on (with every waiting event in one batch, it would sit idle).
MAX_BATCH = 16


@dataclass
class WriterStats:
    """Counters for tests and the bench: how many batches carried how many events."""

    batches: int = 0
    events: int = 0


@dataclass
class _Job:
    auth: SessionAuth
    env: Envelope
    signature: str
    statement: Statement
    future: asyncio.Future[Outcome]
    context: contextvars.Context  # the request's log context, for anything logged on its behalf


class BatchWriter:
    """Writes submitted events in batches from one task on the running loop (one: batches never deadlock)."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        ring: Callable[[], Keyring],
        *,
        max_batch: int = MAX_BATCH,
        stats: WriterStats | None = None,
    ) -> None:
        self._pool = pool
        self._ring = ring
        self.max_batch = max_batch
        self.stats = stats or WriterStats()
        self._waiting: list[_Job] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, auth: SessionAuth, env: Envelope, signature: str) -> Outcome:
        """Store one event; returns once it is committed (or raises StorageUnavailable)."""
        loop = asyncio.get_running_loop()
        ring = self._ring()
        try:
            statement = store.ingest_statement(auth, env, signature, ring)
        except EVENT_FAILURES:  # e.g. the QR cannot be encrypted: write it alone, which stores it raw if need be
            return await ingest_event(self._pool, auth, env, signature, ring)
        job = _Job(auth, env, signature, statement, loop.create_future(), contextvars.copy_context())
        self._waiting.append(job)
        if self._task is None:
            # A fresh context: the writer's own log lines belong to no request in particular.
            self._task = loop.create_task(self._run(), context=contextvars.Context())
        return await job.future

    async def drain(self) -> None:
        """Wait until every submitted event is written (shutdown)."""
        while self._task is not None:
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        batch: list[_Job] = []
        try:
            while self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                await self._write(batch)
        except BaseException as e:  # cancelled (shutdown) or a bug: whoever still waits must hear of it, not hang
            stranded, self._waiting = batch + self._waiting, []
            _settle(stranded, [StorageUnavailable(f"writer stopped: {type(e).__name__}")] * len(stranded))
            if not isinstance(e, Exception):
                raise
            log.exception("webhook writer stopped")  # the next event starts a new one
        finally:
            self._task = None  # no await between the empty check and here: no submit can be missed

    async def _write(self, batch: list[_Job]) -> None:
        results: list[Outcome | BaseException]
        try:
            results = list(await self._write_together(batch))
        except (*EVENT_FAILURES, DeadlockDetected, SerializationFailure) as e:  # its data, or another writer
            log.info("batch of %d rolled back (%s); writing its events one by one", len(batch), type(e).__name__)
            results = [await self._write_alone(job) for job in batch]
        except psycopg.Error as e:
            results = [StorageUnavailable(first_line(e))] * len(batch)
        except Exception as e:  # a bug must fail these requests, never strand them
            log.exception("webhook batch failed")
            results = [e] * len(batch)
        self.stats.batches += 1
        self.stats.events += len(batch)
        _settle(batch, results)

    async def _write_together(self, batch: list[_Job]) -> list[Outcome]:
        async with self._pool.connection(timeout=POOL_TIMEOUT_S) as conn:
            async with async_service_session(conn):
                cursors = [await conn.execute(job.statement.sql, job.statement.params) for job in batch]
            # COMMIT went with the statements; their rows arrived with its answer.
            return [store.outcome(await cur.fetchone()) for cur in cursors]

    async def _write_alone(self, job: _Job) -> Outcome | BaseException:
        alone = ingest_event(self._pool, job.auth, job.env, job.signature, self._ring())
        try:
            return await asyncio.get_running_loop().create_task(alone, context=job.context)  # logs as its request
        except Exception as e:
            return e


def _settle(batch: list[_Job], results: list[Outcome | BaseException]) -> None:
    for job, result in zip(batch, results, strict=True):
        if job.future.done():  # the request was cancelled (client went away); the event is stored all the same
            continue
        if isinstance(result, BaseException):
            job.future.set_exception(result)
        else:
            job.future.set_result(result)
