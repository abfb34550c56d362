"""A faster `__init__` for frozen dataclasses built by the thousand (the tick's conversation views, ADR 0058).

A frozen dataclass's generated `__init__` sets each field with `object.__setattr__` (its own `__setattr__`
refuses): about 3.5 µs for the 17 fields of a ConversationView, seven times what writing them into the
instance's `__dict__` costs. `quick_init` replaces only that `__init__`, with the same parameters and
defaults; the class stays the frozen dataclass it was (fields, ==, repr, hash, `replace`, pickling, and
assignment raising FrozenInstanceError are dataclasses' own).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Give frozen dataclass `cls` an `__init__` that fills `__dict__` directly (no __post_init__, slots, default
    factories, init=False or keyword-only fields: refused, the generated code would not honour them)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or hasattr(cls, "__slots__") or hasattr(cls, "__post_init__"):
        raise TypeError(f"quick_init needs a frozen dataclass without slots or __post_init__, not {cls.__name__}")
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if any(f.default_factory is not dataclasses.MISSING or not f.init or f.kw_only for f in fields):
        raise TypeError(f"quick_init: {cls.__name__} has a default_factory, an init=False or a kw_only field")
    defaults: dict[str, Any] = {f"_d_{f.name}": f.default for f in fields if f.default is not dataclasses.MISSING}
    signature = ", ".join(f.name + (f" = _d_{f.name}" if f"_d_{f.name}" in defaults else "") for f in fields)
    body = "".join(f"    d[{f.name!r}] = {f.name}\n" for f in fields) or "    pass\n"
    namespace: dict[str, Any] = dict(defaults)
    exec(f"def __init__(self, {signature}):\n    d = self.__dict__\n{body}", namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
