"""Upgrading a database from before `t_pairings.position` (ADR 0060) numbers its pairings in the order the runtime
read them until then, so the upgrade by itself changes no round_robin rotation."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from mirage.db.migrate import default_dir, migrate
from tests.db.factories import make_tenant_graph

POSITION = "20261207001400_pairing_position.sql"
OLD_ORDER = "select id::text from t_pairings order by conversation_id, created_at, id"
PAIR = "insert into t_pairings (tenant_id, conversation_id, number_a_id, number_b_id) values (%s, %s, %s, %s)"
NEW_ORDER = "select id::text from t_pairings order by conversation_id, position nulls last, created_at, id"


def test_upgrading_numbers_existing_pairings_in_the_order_they_ran(empty_database: str, tmp_path: Path) -> None:
    before = tmp_path / "before"
    before.mkdir()
    for f in default_dir().glob("*.sql"):
        if f.name < POSITION:
            shutil.copy(f, before)
    with psycopg.connect(empty_database, row_factory=dict_row) as conn:
        migrate(conn, before)
        graphs = [make_tenant_graph(conn) for _ in range(2)]
        for g in graphs:  # three more bot pairs per conversation: two sharing a created_at, one later
            tid, conversation = g.rows["t_tenants"], g.rows["t_conversations"]
            numbers = [
                conn.execute(
                    "insert into t_numbers (tenant_id, key, label, wa_number) values (%s, %s, %s, %s) returning id",
                    (tid, f"x{i}", f"X{i}", f"+55119888{i:05d}"),
                ).fetchone()["id"]  # type: ignore[index]
                for i in range(3)
            ]
            for a, b in ((0, 1), (1, 2)):
                conn.execute(PAIR, (tid, conversation, numbers[a], numbers[b]))
            conn.commit()
            conn.execute(PAIR, (tid, conversation, numbers[0], numbers[2]))
        conn.commit()
        ran = [r["id"] for r in conn.execute(OLD_ORDER).fetchall()]
        migrate(conn)
        assert [r["id"] for r in conn.execute(NEW_ORDER).fetchall()] == ran
        positions = conn.execute(
            "select conversation_id, array_agg(position order by position) as p from t_pairings group by 1"
        ).fetchall()
    assert sorted(r["p"] for r in positions) == [[0, 1, 2, 3], [0, 1, 2, 3]]
