"""The page's figures, computed from the rows mirage/db/page.py returns. Pure: no I/O, `today` is an argument."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID

from mirage.engine.ramp import daily_message_cap

Row = Mapping[str, Any]
ZERO = UUID(int=0)

# Evolution / runtime status -> the five live states the page shows.
STATES = {
    "open": "open",
    "connecting": "connecting",
    "provisioning": "connecting",
    "pending": "connecting",
    "qr": "qr",
    "close": "closed",
    "logged_out": "closed",
    "removed": "closed",
    "refused": "closed",
    "error": "closed",
    "paused": "paused",
}


@dataclass(frozen=True)
class Counts:
    sent: int = 0
    received: int = 0
    delivered: int = 0
    read: int = 0
    failed: int = 0

    @classmethod
    def of(cls, row: Row | None) -> Counts:
        if row is None:
            return cls()
        return cls(*(int(row.get(k) or 0) for k in ("sent", "received", "delivered", "read", "failed")))

    @property
    def total(self) -> int:
        return self.sent + self.received


@dataclass(frozen=True)
class Latency:
    replies: int = 0
    p50: float | None = None
    p95: float | None = None


@dataclass(frozen=True)
class Topic:
    topic: str
    messages: int
    replies: int


@dataclass(frozen=True)
class Figures:
    totals: Counts
    per_number: dict[UUID, Counts]
    daily: list[tuple[date, Counts]]
    heatmap: list[list[int]]  # [weekday 0=Mon][hour]
    latency: Latency
    topics: list[Topic]


@dataclass(frozen=True)
class NumberState:
    id: UUID
    key: str
    label: str
    wa_number: str
    state: str  # open | connecting | qr | closed | paused
    reason: str | None
    sent_today: int
    received_today: int
    cap: int
    used: int
    period: Counts = field(default_factory=Counts)

    @property
    def headroom(self) -> int:
        return max(0, self.cap - self.used)


def percentile(histogram: Mapping[int, int], p: float) -> float | None:
    """percentile_disc over a histogram of whole seconds: the smallest value with at least p of the mass."""
    total = sum(histogram.values())
    if not total:
        return None
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= p * total:
            return float(value)
    return float(max(histogram))


def figures(rows: Iterable[Row], days: Sequence[date]) -> Figures:
    """Turn the grouped fact rows into totals, per-number counts, a daily series, a heatmap, latency and topics."""
    totals = Counts()
    per_number: dict[UUID, Counts] = {}
    by_day: dict[date, Counts] = {}
    heatmap = [[0] * 24 for _ in range(7)]
    latencies: dict[int, int] = {}
    topic_sent: dict[str, int] = {}
    topic_replies: dict[str, int] = {}
    for r in rows:
        g, kind = r["g"], r["kind"]
        if kind == "hour":
            if g == "total":
                totals = Counts.of(r)
            elif g == "number":
                per_number[r["number_id"]] = Counts.of(r)
            elif g == "day":
                by_day[r["day"]] = Counts.of(r)
            elif g == "day_key":
                c = Counts.of(r)
                heatmap[r["day"].weekday()][int(r["key"])] += c.total
        elif kind == "latency" and g == "key":
            latencies[int(r["key"])] = int(r["replies"] or 0)
        elif kind == "topic" and g == "key":
            topic_sent[r["key"]] = int(r["sent"] or 0)
        elif kind == "answer" and g == "key":
            topic_replies[r["key"]] = int(r["replies"] or 0)
    latency = Latency(sum(latencies.values()), percentile(latencies, 0.5), percentile(latencies, 0.95))
    names = set(topic_sent) | set(topic_replies)
    topics = sorted(
        (Topic(n, topic_sent.get(n, 0), topic_replies.get(n, 0)) for n in names),
        key=lambda t: (-t.messages, -t.replies, t.topic),
    )
    daily = [(d, by_day.get(d, Counts())) for d in days]
    return Figures(totals, per_number, daily, heatmap, latency, topics)


def state_of(row: Row) -> tuple[str, str | None]:
    """The live state of a number and why, when it is not simply open."""
    if not row.get("active", True):
        return "paused", row.get("status_reason") or "inactive"
    state = STATES.get(str(row.get("status")), "closed")
    reason = row.get("status_reason")
    if state == "closed" and not reason:
        reason = str(row.get("status"))
    return state, reason


def number_states(
    numbers: Iterable[Row],
    today: Mapping[Any, Row],
    *,
    daily_limit: int,
    today_date: date,
    period: Mapping[UUID, Counts] | None = None,
) -> list[NumberState]:
    out = []
    for n in numbers:
        state, reason = state_of(n)
        t = today.get(n["id"]) or {}
        cap = min(daily_limit, daily_message_cap(n.get("warmup_started_on"), today_date))
        out.append(
            NumberState(
                id=n["id"],
                key=n["key"],
                label=n["label"],
                wa_number=n["wa_number"],
                state=state,
                reason=reason,
                sent_today=int(t.get("sent") or 0),
                received_today=int(t.get("received") or 0),
                cap=cap,
                used=int(t.get("used") or 0),
                period=(period or {}).get(n["id"], Counts()),
            )
        )
    return out


def exchanges_per_round(rounds: Row) -> float | None:
    finished = int(rounds.get("finished") or 0)
    return int(rounds.get("exchanges") or 0) / finished if finished else None
