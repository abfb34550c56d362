"""`quick_init` swaps only a frozen dataclass's `__init__`: the view classes it is used on still refuse assignment,
compare, copy (`replace`, `copy`) and take their defaults as dataclasses' own `__init__` made them; classes it
cannot honour are refused."""

from __future__ import annotations

import copy
import dataclasses
from datetime import date, time

import pytest

from mirage.engine.quickinit import quick_init
from mirage.engine.view import ConversationView, Effective, NumberView, Pair, Topic
from tests.engine.helpers import view

SAMPLES = [
    Pair("n1", "n2", "either"),
    Pair("n1", "n2", "a", pairing_id="p1"),
    Topic("t1", "futebol", "o jogo", "", date(2026, 12, 1), None, 3),
    NumberView("n1", "bot1", "+5511900000001", "open", True, None, None, None),
    Effective(1000, 2000, 30, 200, True, True, False),
    view(),
]


@pytest.mark.parametrize("obj", SAMPLES, ids=lambda o: type(o).__name__)
def test_quick_init_classes_stay_frozen_dataclasses(obj: object) -> None:
    fields = dataclasses.fields(obj)  # type: ignore[arg-type]
    values = {f.name: getattr(obj, f.name) for f in fields}
    rebuilt = type(obj)(**values)
    assert rebuilt == obj and repr(rebuilt) == repr(obj)
    assert copy.deepcopy(obj) == obj and copy.copy(obj) == obj
    assert dataclasses.replace(obj, **{fields[0].name: "other"}) != obj  # type: ignore[type-var]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, fields[0].name, "changed")
    with pytest.raises(TypeError):
        type(obj)(*list(values.values())[:-2])  # a missing argument is refused, as before


def test_quick_init_keeps_defaults() -> None:
    assert Pair("a", "b", "a").pairing_id is None
    assert ConversationView.__init__.__qualname__ == "ConversationView.__init__"


@dataclasses.dataclass
class _Mutable:
    x: int


@dataclasses.dataclass(frozen=True)
class _Factory:
    x: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class _PostInit:
    x: int

    def __post_init__(self) -> None:
        pass


@dataclasses.dataclass(frozen=True, slots=True)
class _Slots:
    x: time


@pytest.mark.parametrize("cls", [_Mutable, _Factory, _PostInit, _Slots, int])
def test_quick_init_refuses_what_it_cannot_honour(cls: type) -> None:
    with pytest.raises(TypeError):
        quick_init(cls)
