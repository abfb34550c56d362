"""The custom access token hook puts the tenant from t_users into the JWT, and only Supabase Auth may run it."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from mirage.db.migrate import default_dir
from tests.db.factories import TenantGraph, make_tenant_graph
from tests.db.helpers import act_as, add_auth_user, attempt, ensure_auth_users, ensure_role

Conn = psycopg.Connection[Any]
HOOK = default_dir() / "20261130000300_access_token_hook.sql"


def _event(user_id: uuid.UUID, **claims: object) -> dict[str, object]:
    base: dict[str, object] = {
        "aud": "authenticated",
        "exp": 1_900_000_000,
        "iat": 1_800_000_000,
        "sub": str(user_id),
        "role": "authenticated",
        "aal": "aal1",
        "session_id": str(uuid.uuid4()),
        "email": "ana@padaria.com.br",
        "phone": "",
        "is_anonymous": False,
        "app_metadata": {"provider": "email"},
        "user_metadata": {},
    }
    return {"user_id": str(user_id), "claims": base | claims, "authentication_method": "password"}


def _hook(conn: Conn, event: dict[str, object]) -> dict[str, Any]:
    row = conn.execute("select public.custom_access_token_hook(%s) as out", (Jsonb(event),)).fetchone()
    assert row is not None
    return dict(row["out"])


def _link(conn: Conn, graph: TenantGraph, auth_id: uuid.UUID, role: str, email: str, days_ago: int) -> None:
    conn.execute(
        "insert into t_users (tenant_id, email, role, auth_user_id, created_at) "
        "values (%s, %s, %s, %s, now() - make_interval(days => %s))",
        (graph.tenant_id, email, role, auth_id, days_ago),
    )


def test_hook_adds_tenant_and_role_from_t_users_and_keeps_other_claims(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph]
) -> None:
    a, _ = two_tenants
    event = _event(a.admin_auth_id)
    out = _hook(conn, event)
    assert out == {"claims": event["claims"] | {"app.tenant_id": str(a.tenant_id), "app.role": "admin"}}  # type: ignore[operator]


def test_hook_gives_no_tenant_to_an_unlinked_user_and_drops_forged_claims(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph]
) -> None:
    a, _ = two_tenants
    stranger = uuid.uuid4()
    event = _event(
        stranger,
        **{"app.tenant_id": str(a.tenant_id), "app.role": "admin"},
        user_metadata={"tenant_id": str(a.tenant_id), "app.tenant_id": str(a.tenant_id)},
    )
    claims = _hook(conn, event)["claims"]
    assert "app.tenant_id" not in claims
    assert "app.role" not in claims


def test_hook_never_reads_the_tenant_from_user_metadata(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph]
) -> None:
    a, b = two_tenants
    event = _event(a.admin_auth_id, user_metadata={"tenant_id": str(b.tenant_id), "app.tenant_id": str(b.tenant_id)})
    assert _hook(conn, event)["claims"]["app.tenant_id"] == str(a.tenant_id)


@pytest.mark.parametrize("preferred", [None, "a", "b"])
def test_hook_picks_one_tenant_for_a_member_of_several(conn: Conn, preferred: str | None) -> None:
    a, b = make_tenant_graph(conn), make_tenant_graph(conn)
    person = uuid.uuid4()
    _link(conn, a, person, "viewer", "ana@padaria.com.br", days_ago=30)  # the older membership
    _link(conn, b, person, "admin", "ana@padaria.com.br", days_ago=1)
    app_metadata: dict[str, object] = {"provider": "email"}
    if preferred:
        app_metadata["tenant_id"] = str((a if preferred == "a" else b).tenant_id)
    claims = _hook(conn, _event(person, app_metadata=app_metadata))["claims"]
    chosen, role = (b, "admin") if preferred == "b" else (a, "viewer")  # app_metadata picks, else the oldest
    assert (claims["app.tenant_id"], claims["app.role"]) == (str(chosen.tenant_id), role)


def test_hook_skips_archived_tenants(conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph]) -> None:
    a, _ = two_tenants
    conn.execute("update t_tenants set archived_at = now() where id = %s", (a.tenant_id,))
    assert "app.tenant_id" not in _hook(conn, _event(a.admin_auth_id))["claims"]


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_api_roles_cannot_run_the_hook(conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph], role: str) -> None:
    a, _ = two_tenants
    act_as(conn, role, None)
    assert attempt(conn, "select public.custom_access_token_hook(%s)", (Jsonb(_event(a.admin_auth_id)),)) == "42501"


def test_supabase_auth_admin_runs_the_hook_when_that_role_exists(
    conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph]
) -> None:
    """On Supabase the role exists before migrations run; here it is created in the test's transaction."""
    a, _ = two_tenants
    ensure_role(conn, "supabase_auth_admin")
    conn.execute(HOOK.read_text(encoding="utf-8"))  # the migration again, now taking its Supabase branch
    conn.execute("set local role supabase_auth_admin")
    claims = _hook(conn, _event(a.admin_auth_id))["claims"]
    assert claims["app.tenant_id"] == str(a.tenant_id)
    # it reads memberships and tenants, nothing else
    assert attempt(conn, "select count(*) from t_numbers") == "42501"


def test_link_auth_users_links_confirmed_emails_only(conn: Conn, two_tenants: tuple[TenantGraph, TenantGraph]) -> None:
    """On Supabase auth.users exists; here a stand-in with the columns the link reads, in the test's transaction."""
    a, _ = two_tenants
    assert conn.execute("select mirage_private.link_auth_users() as n").fetchone() == {"n": 0}
    ensure_auth_users(conn)
    confirmed, unconfirmed = uuid.uuid4(), uuid.uuid4()
    add_auth_user(conn, confirmed, "Bia@Padaria.com.br")
    add_auth_user(conn, unconfirmed, "caio@padaria.com.br", confirmed=False)
    conn.execute(
        "insert into t_users (tenant_id, email, role) values (%s, 'bia@padaria.com.br', 'member'), "
        "(%s, 'caio@padaria.com.br', 'member')",
        (a.tenant_id, a.tenant_id),
    )
    act_as(conn, "service_role", {"role": "service_role"})
    assert conn.execute("select mirage_private.link_auth_users() as n").fetchone() == {"n": 1}
    links = conn.execute(
        "select email, auth_user_id from t_users where tenant_id = %s and email like '%%padaria%%' order by email",
        (a.tenant_id,),
    ).fetchall()
    assert [(r["email"], r["auth_user_id"]) for r in links] == [
        ("bia@padaria.com.br", confirmed),
        ("caio@padaria.com.br", None),
    ]
    act_as(conn, "authenticated", None)
    assert attempt(conn, "select mirage_private.link_auth_users()") == "42501"
