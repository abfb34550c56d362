"""Knobs of the OpenAI-compatible simulator: the key it demands (if any), its models, and injectable faults."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

DEFAULT_MODELS: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")


@dataclass
class FaultConfig:
    """Faults a real endpoint produces; `*_next` counters are deterministic (tests), `*_rate` random (demo)."""

    rate_limit_next: int = 0  # the next N chat requests answer 429 with retry-after
    error_next: int = 0  # the next N answer 500
    slow_next: int = 0  # the next N wait slow_s before answering
    malformed_next: int = 0  # the next N answer 200 with a body that is not JSON
    empty_next: int = 0  # the next N answer 200 with "choices": []
    rate_limit_rate: float = 0.0
    error_rate: float = 0.0
    slow_rate: float = 0.0
    malformed_rate: float = 0.0
    empty_rate: float = 0.0
    retry_after_s: float = 1.0  # the retry-after header of a 429
    slow_s: float = 20.0

    def update(self, options: dict[str, object]) -> None:
        """Set the named fields (ints for counters, floats otherwise); unknown names raise KeyError."""
        kinds = {f.name: f.type for f in fields(self)}
        for name, value in options.items():
            if name not in kinds:
                raise KeyError(name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(name)
            setattr(self, name, int(value) if name.endswith("_next") else float(value))


@dataclass
class OpenAISimConfig:
    """The simulator: `api_key` set -> requests need `Authorization: Bearer <key>` (401 otherwise)."""

    api_key: str | None = None
    models: tuple[str, ...] = DEFAULT_MODELS
    faults: FaultConfig = field(default_factory=FaultConfig)
    seed: int | None = None
