"""build_plan is pure: same inputs, same plan; applying a plan reaches the desired state; JSON round-trips."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirage.reconcile.diff import DesiredStateError, build_plan
from mirage.reconcile.plan import FORMAT_VERSION, Op, Plan, PlanFormatError
from mirage.reconcile.resources import DesiredState, DesiredTenant, Ref, Resource
from mirage.reconcile.state import ActualState
from tests.reconcile.helpers import simulate

TENANT = Resource(
    "tenant",
    (),
    {
        "name": "Acme",
        "plan": "free",
        "timezone": "America/Sao_Paulo",
        "locale": "en",
        "prune": False,
        "archived": False,
    },
)


def ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"00000000-0000-4000-8000-{next(counter):012d}"


def persona(key: str, prev: tuple[str, ...] = ()) -> Resource:
    return Resource(
        "personas",
        (key,),
        {
            "key": key,
            "name": key.title(),
            "style": "",
            "greeting_morning": [],
            "greeting_afternoon": [],
            "greeting_evening": [],
            "phrases": {},
            "emoji_rate": 0.3,
        },
        previous=tuple((p,) for p in prev),
    )


def number(key: str, label: str, persona_key: str | None, prev: tuple[str, ...] = (), phone: int = 0) -> Resource:
    return Resource(
        "numbers",
        (key,),
        {
            "key": key,
            "label": label,
            "wa_number": f"+55119999{phone:05d}",
            "persona_id": Ref(f"personas.{persona_key}") if persona_key else None,
            "warmup_started_on": None,
            "active": True,
        },
        previous=tuple((p,) for p in prev),
    )


def desired(*resources: Resource, slug: str = "acme", prune: bool = False) -> DesiredState:
    return DesiredState({slug: DesiredTenant(slug, (TENANT, *resources), prune=prune)})


def test_build_plan_is_deterministic_given_the_id_factory() -> None:
    d = desired(persona("tio"), number("joao", "João", "tio"))
    a, b = build_plan(d, ActualState.empty(), new_id=ids()), build_plan(d, ActualState.empty(), new_id=ids())
    assert a == b and a.plan_hash == b.plan_hash


def test_new_children_reference_the_ids_given_to_new_parents() -> None:
    plan = build_plan(desired(persona("tio"), number("joao", "João", "tio")), ActualState.empty(), new_id=ids())
    by_address = {i.address: i for i in plan.items}
    persona_id = by_address["personas.tio"].id
    ref = next(c for c in by_address["numbers.joao"].changes if c.field == "persona_id")
    assert (ref.new, ref.new_ref) == (persona_id, "personas.tio")
    assert {i.tenant_id for i in plan.items} == {by_address["tenant"].id}


def test_a_reference_to_an_undeclared_row_is_an_error() -> None:
    with pytest.raises(DesiredStateError, match=r"numbers\.joao refers to personas\.ghost"):
        build_plan(desired(number("joao", "João", "ghost")), ActualState.empty())


def test_plan_json_round_trips_and_carries_the_format_version() -> None:
    plan = build_plan(desired(persona("tio"), number("joao", "João", "tio")), ActualState.empty(), new_id=ids())
    doc = json.loads(plan.to_json())
    assert doc["format_version"] == FORMAT_VERSION and doc["plan_hash"] == plan.plan_hash
    assert Plan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: {**d, "format_version": 99}, "format_version 99 is not supported"),
        (lambda d: {k: v for k, v in d.items() if k != "format_version"}, "no format_version"),
        (
            lambda d: {
                **d,
                "summary": {"add": 0, "change": 0, "destroy": 0},
                "tenants": [{**d["tenants"][0], "items": d["tenants"][0]["items"][:1]}],
            },
            "was edited",
        ),
        (lambda d: {**d, "fingerprints": {}}, "damaged plan file"),
    ],
)
def test_a_damaged_or_foreign_plan_file_is_refused(mangle: Callable[[dict], dict], message: str) -> None:  # type: ignore[type-arg]
    plan = build_plan(desired(persona("tio")), ActualState.empty(), new_id=ids())
    with pytest.raises(PlanFormatError, match=message):
        Plan.from_json(json.dumps(mangle(json.loads(plan.to_json()))))


def test_unchanged_desired_state_plans_nothing() -> None:
    d = desired(persona("tio"), number("joao", "João", "tio"))
    actual = simulate(ActualState.empty(), build_plan(d, ActualState.empty()))
    again = build_plan(d, actual)
    assert again.empty and again.summary.total == 0


def test_deleting_a_persona_deletes_children_after_the_rows_pointing_at_it_change() -> None:
    d1 = desired(persona("tio"), persona("vo"), number("joao", "João", "tio"))
    actual = simulate(ActualState.empty(), build_plan(d1, ActualState.empty()))
    plan = build_plan(desired(persona("vo"), number("joao", "João", "vo")), actual)
    assert [(i.op, i.address) for i in plan.items] == [(Op.DELETE, "personas.tio"), (Op.UPDATE, "numbers.joao")]
    assert plan.blocked(allow_delete=False) and not plan.blocked(allow_delete=True)


# Property: from any state, applying the plan for any desired state reaches it (the next plan is empty).

KEYS = ["a", "b", "c", "d"]
PERSONAS = ["p", "q"]


@st.composite
def fleets(draw: st.DrawFn, previous: tuple[str, ...] = ()) -> DesiredState:
    personas = draw(st.lists(st.sampled_from(PERSONAS), unique=True))
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True))
    resources = [persona(p) for p in personas]
    for i, k in enumerate(keys):
        label = draw(st.sampled_from(["Um", "Dois"]))
        ref = draw(st.sampled_from([None, *personas]))
        prev = tuple(draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=2)))
        resources.append(number(k, label, ref, prev=tuple(p for p in prev if p != k), phone=i))
    return desired(*resources, prune=draw(st.booleans()))


@settings(max_examples=150, deadline=None)
@given(first=fleets(), second=fleets())
def test_applying_a_plan_reaches_the_desired_state(first: DesiredState, second: DesiredState) -> None:
    state = simulate(ActualState.empty(), build_plan(first, ActualState.empty()))
    plan = build_plan(second, state)
    state = simulate(state, plan)
    assert build_plan(second, state).empty
    # A rename keeps the row: every row id that survives was there before or was created by this plan.
    created = {i.id for i in plan.items if i.op is Op.CREATE}
    deleted = {i.id for i in plan.items if i.op is Op.DELETE}
    assert created.isdisjoint(deleted)


def test_a_rename_keeps_the_row_id_and_becomes_one_update() -> None:
    state = simulate(ActualState.empty(), build_plan(desired(number("joao", "João", None)), ActualState.empty()))
    old_id = state.rows["numbers"][0].id
    plan = build_plan(desired(number("tio-joao", "João", None, prev=("joao",))), state)
    [item] = plan.items
    assert (item.op, item.id, item.renamed_from) == (Op.UPDATE, old_id, "joao")
    assert [(c.field, c.old, c.new) for c in item.changes] == [("key", "joao", "tio-joao")]


def test_a_previous_key_still_declared_elsewhere_is_not_a_rename() -> None:
    state = simulate(ActualState.empty(), build_plan(desired(number("a", "A", None)), ActualState.empty()))
    plan = build_plan(desired(number("a", "A", None), number("b", "B", None, prev=("a",), phone=1)), state)
    assert [(i.op, i.address) for i in plan.items] == [(Op.CREATE, "numbers.b")]


def test_drift_is_marked_only_when_the_row_no_longer_matches_its_applied_hash() -> None:
    d = desired(number("joao", "João", None))
    state = simulate(ActualState.empty(), build_plan(d, ActualState.empty()))
    row = state.rows["numbers"][0]
    edited = replace(state, rows={**state.rows, "numbers": (replace(row, values={**row.values, "label": "x"}),)})
    [item] = build_plan(d, edited).items
    assert item.drift
    changed_yaml = desired(number("joao", "Joãozinho", None))
    [item] = build_plan(changed_yaml, state).items
    assert not item.drift


def test_the_plan_does_not_depend_on_the_order_rows_come_back_from_the_database() -> None:
    """Queries have no ORDER BY (heap order changes with updates): the same rows must give the same plan."""
    state = simulate(
        ActualState.empty(),
        build_plan(desired(*(number(k, k.upper(), None, phone=i) for i, k in enumerate("abcd"))), ActualState.empty()),
    )
    shuffled = replace(state, rows={**state.rows, "numbers": tuple(reversed(state.rows["numbers"]))})
    d = desired(number("b", "B", None, phone=1))
    plans = [build_plan(d, s, new_id=ids()) for s in (state, shuffled)]
    assert [(i.op, i.address) for i in plans[0].items] == [(i.op, i.address) for i in plans[1].items]
    assert plans[0].plan_hash == plans[1].plan_hash
