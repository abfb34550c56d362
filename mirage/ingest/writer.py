"""Group commit: the webhooks waiting at one moment are written in one transaction, with one disk flush.

A 200 means the event is committed (Evolution may not retry it), and a durable commit costs a flush of the
WAL (a few ms). Committing each request on its own puts concurrent requests in line behind each other's
flushes; here a writer thread takes every event waiting (up to `max_batch`), pipelines their statements on
one pooled connection, commits once and wakes each request with its own outcome. If the batch fails on an
event's data, it is rolled back and each of its events is written alone (`ingest_event`, with its own
fallback), so one bad event never costs another its storage. If Postgres itself is down, every waiting
request gets StorageUnavailable (503: Evolution retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.errors import DeadlockDetected, SerializationFailure
from psycopg_pool import ConnectionPool

from mirage.crypto import Keyring
from mirage.ingest import store
from mirage.ingest.pipeline import EVENT_FAILURES, POOL_TIMEOUT_S, StorageUnavailable, as_service, ingest_event
from mirage.ingest.sessions import SessionAuth
from mirage.ingest.store import Outcome
from mirage.integrations.evolution.events import Envelope

log = logging.getLogger(__name__)

IDLE_EXIT_S = 10.0  # an idle writer thread ends; the next event starts one again


@dataclass
class _Job:
    auth: SessionAuth
    env: Envelope
    signature: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Outcome]
    context: contextvars.Context  # the request's log context, for anything logged on its behalf


class BatchWriter:
    """Writes submitted events in batches from `threads` writer threads (one avoids batches deadlocking)."""

    def __init__(
        self,
        pool: Callable[[], ConnectionPool[Any]],
        ring: Callable[[], Keyring],
        *,
        threads: int = 1,
        max_batch: int = 64,
    ) -> None:
        self._pool = pool
        self._ring = ring
        self.threads = threads
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = 0
        self.batches = 0  # counters for tests and the bench
        self.events = 0

    async def submit(self, auth: SessionAuth, env: Envelope, signature: str) -> Outcome:
        """Store one event; returns once it is committed (or raises StorageUnavailable)."""
        loop = asyncio.get_running_loop()
        job = _Job(auth, env, signature, loop, loop.create_future(), contextvars.copy_context())
        self._queue.put(job)
        with self._lock:
            if self._running < self.threads:
                self._running += 1
                threading.Thread(target=self._run, name="mirage-ingest-writer", daemon=True).start()
        return await job.future

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_EXIT_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._running -= 1
                        return
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[_Job]) -> None:
        results: list[Outcome | BaseException]
        try:
            results = list(self._write_together(batch))
        except (*EVENT_FAILURES, DeadlockDetected, SerializationFailure) as e:  # its data, or another writer
            log.info("batch of %d rolled back (%s); writing its events one by one", len(batch), type(e).__name__)
            results = [self._write_alone(job) for job in batch]
        except psycopg.Error as e:
            failure = StorageUnavailable(str(e).strip().splitlines()[0][:200] if str(e).strip() else repr(e))
            results = [failure] * len(batch)
        except Exception as e:  # a bug must fail these requests, never strand them
            log.exception("webhook batch failed")
            results = [e] * len(batch)
        self.batches += 1
        self.events += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Outcome], Outcome | BaseException]]] = {}
        for job, result in zip(batch, results, strict=True):
            by_loop.setdefault(job.loop, []).append((job.future, result))
        for loop, settled in by_loop.items():  # one wake-up per event loop, not one per request
            with contextlib.suppress(RuntimeError):  # that loop is gone (shutdown): nobody is waiting
                loop.call_soon_threadsafe(_settle, settled)

    def _write_together(self, batch: list[_Job]) -> list[Outcome]:
        ring = self._ring()
        statements = [store.ingest_statement(j.auth, j.env, j.signature, ring) for j in batch]
        with self._pool().connection(timeout=POOL_TIMEOUT_S) as conn, conn.pipeline(), as_service(conn):
            cursors = [conn.execute(st.sql, st.params) for st in statements]  # all sent before any reply is read
            rows = [cur.fetchone() for cur in cursors]
        return [store.outcome(row) for row in rows]

    def _write_alone(self, job: _Job) -> Outcome | BaseException:
        try:
            return job.context.run(ingest_event, self._pool(), job.auth, job.env, job.signature, self._ring())
        except Exception as e:
            return e


def _settle(settled: list[tuple[asyncio.Future[Outcome], Outcome | BaseException]]) -> None:
    for future, result in settled:
        if future.done():  # the request was cancelled (client went away); the event is stored all the same
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
