"""The tenant's WhatsApp numbers (`numbers.yaml`, t_numbers): each one an Evolution instance once applied."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from mirage.config.types import E164, Key, Model, previous_keys


class Number(Model):
    """One bot number: its label, E.164 number, persona and warm-up start."""

    label: str = Field(min_length=1, description="Human-readable name shown in plans and metrics.")
    number: E164 = Field(description='The WhatsApp number in E.164 ("+5511987654321"); unique in the tenant.')
    persona: Key | None = Field(None, description="Key of the persona this number speaks as. Default: none.")
    warmup_started_on: date | None = Field(
        None,
        description="Day the number started sending; lint keeps volume under the warm-up ramp for its age. "
        "Default: none (treated as an established number).",
    )
    active: bool = Field(True, description="Inactive numbers keep their instance but send nothing. Default true.")
    previous_keys: list[Key] = previous_keys()


class NumbersFile(Model):
    """`numbers.yaml`."""

    numbers: dict[Key, Number] = Field(default_factory=dict, description="Bot numbers by key. Default {}.")
