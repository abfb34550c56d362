"""Helpers for reconciler tests: run the CLI in process, edit fixture YAML, snapshot every table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner, Result
from psycopg import sql

from mirage.cli import cli

FIXTURES = Path(__file__).parent / "fixtures"
SECRETS = {
    "PADARIA_EVOLUTION_API_KEY": "evo-Sup3r-S3cret-Value-0001",
    "PADARIA_OPENAI_API_KEY": "sk-test-Sup3rS3cretOpenAIKey0002",
}


def mirage(*args: str | Path, input: str | None = None) -> Result:
    """Run `mirage <args>` in process; the result has exit_code, stdout, stderr and output."""
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def edit(path: Path, old: str, new: str) -> None:
    """Replace exactly one occurrence of `old` in `path`."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def snapshot(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every public table (sorted), for "nothing changed" assertions."""
    conn.rollback()
    tables = [
        r[0]
        for r in conn.cursor(row_factory=psycopg.rows.tuple_row)
        .execute("select tablename from pg_tables where schemaname = 'public' order by 1")
        .fetchall()
    ]
    out = {}
    for table in tables:
        cur = conn.cursor(row_factory=psycopg.rows.tuple_row)
        rows = cur.execute(sql.SQL("select * from {}").format(sql.Identifier(table))).fetchall()
        out[table] = sorted(rows, key=repr)
    conn.rollback()
    return out


def count(conn: psycopg.Connection[Any], table: str, where: str = "true", *params: Any) -> int:
    row = conn.execute(f"select count(*) as n from {table} where {where}", params).fetchone()
    conn.rollback()
    return int(row["n"]) if isinstance(row, dict) else int(row[0])  # type: ignore[index]


def summary(output: str) -> tuple[int, int, int] | None:
    """(add, change, destroy) from the `Plan: …` line, or None when absent."""
    m = re.search(r"Plan: (\d+) to add, (\d+) to change, (\d+) to destroy\.", output)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def items(output: str, symbol: str) -> list[str]:
    """Item head lines (`  ~ numbers.joao ...`) with the given symbol in a text plan."""
    return [line.strip() for line in output.splitlines() if line.startswith(f"  {symbol} ")]


def simulate(actual: Any, plan: Any) -> Any:
    """Apply `plan` to an ActualState in memory (what apply does to the rows), for pure property tests."""
    from mirage.reconcile.plan import Op
    from mirage.reconcile.resources import SPEC_BY_NAME, TENANT
    from mirage.reconcile.state import ActualState, Row

    rows = {name: {r.id: r for r in rs} for name, rs in actual.rows.items()}
    for item in plan.items:
        spec = SPEC_BY_NAME[item.spec]
        table = rows.setdefault(spec.name, {})
        if item.op is Op.DELETE:
            if spec is TENANT:
                old = table[item.id]
                table[item.id] = Row(
                    old.id, old.tenant_id, None, {**old.values, "archived": True}, old.applied_hash, old.runtime
                )
            else:
                del table[item.id]
        elif item.op is Op.CREATE:
            values = {c.field: c.new for c in item.changes}
            if spec is TENANT:
                values["archived"] = False
            runtime = {"slug": item.tenant} if spec is TENANT else {}
            table[item.id] = Row(item.id, item.tenant_id, item.parent_id, values, item.applied_hash, runtime)
        else:
            old = table[item.id]
            values = {**old.values, **{c.field: c.new for c in item.changes}}
            table[item.id] = Row(old.id, old.tenant_id, old.parent_id, values, item.applied_hash, old.runtime)
    out = {name: tuple(t.values()) for name, t in rows.items()}
    slugs = {r.id: str(r.runtime["slug"]) for r in out.get(TENANT.name, ())}
    return ActualState(rows=out, slugs=slugs)
