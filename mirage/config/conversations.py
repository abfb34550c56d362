"""A conversation (`conversations/<key>.yaml`): who talks, how often, about what; plus tenant-wide defaults."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, model_validator

from mirage.config.schedule import ScheduleSpec, WeekSchedule
from mirage.config.types import E164, Int32, Key, Model, previous_keys

Mode = Literal["pair", "round_robin", "random"]
TopicStrategy = Literal["rotate", "random", "weighted", "sticky"]
ParticipantRole = Literal["starter", "responder", "any"]
Starts = Literal["a", "b", "either"]


class ConversationSettings(Model):
    """Per-conversation overrides of the tenant settings (t_settings_conversation); unset = inherit the tenant's."""

    min_delay_ms: Int32 | None = Field(None, ge=0, description="Shortest delay before a reply, ms. Default: tenant's.")
    max_delay_ms: Int32 | None = Field(None, ge=0, description="Longest delay before a reply, ms. Default: tenant's.")
    hourly_burst_limit: Int32 | None = Field(
        None, gt=0, description="Most messages per number per hour in this conversation. Default: tenant's."
    )
    humanize: bool | None = Field(None, description="Typing presence and jitter. Default: tenant's.")
    allow_bot_to_bot: bool | None = Field(None, description="Allow bot numbers to talk. Default: tenant's.")
    guard_no_echo: bool = Field(True, description="Never send a text equal to the one just received. Default true.")


class Exchanges(Model):
    """How many exchanges a round has, drawn between min and max."""

    min: Int32 = Field(2, ge=1, le=10, description="Fewest exchanges in a round (1-10). Default 2.")
    max: Int32 = Field(4, ge=1, le=20, description="Most exchanges in a round (>= min, <= 20). Default 4.")


class Participant(Model):
    """A bot number (`number: <key>`) or a human contact (`contact: "+55…"`) of the conversation."""

    number: Key | None = Field(None, description="Key of one of the tenant's numbers (a bot). Set this or contact.")
    contact: E164 | None = Field(
        None, description="E.164 number of a contact (a human; needs an outreach policy). Set this or number."
    )
    role: ParticipantRole = Field("any", description="starter | responder | any. Default any.")
    start_order: Int32 = Field(0, ge=0, description="Order in which starters open rounds (round_robin). Default 0.")

    @model_validator(mode="after")
    def _one_of(self) -> Participant:
        if (self.number is None) == (self.contact is None):
            raise ValueError("a participant needs exactly one of `number` or `contact`")
        return self

    @property
    def kind(self) -> Literal["bot", "human"]:
        """participant_kind: bot for a number, human for a contact."""
        return "bot" if self.number is not None else "human"

    @property
    def ref(self) -> str:
        """The number key or the contact's E.164 number."""
        return self.number if self.number is not None else str(self.contact)


class Pairing(Model):
    """An explicit pair: bot `a` with bot `b` (a number key) or with a human (an E.164 contact number)."""

    a: Key = Field(description="Key of the bot number on side a.")
    b: str = Field(
        description='Side b: a number key, or a contact\'s E.164 number ("+55…", needs an outreach policy).',
        min_length=1,
    )
    starts: Starts = Field("a", description="Who opens the round: a | b | either. Default a.")

    @property
    def b_is_contact(self) -> bool:
        return self.b.startswith("+")

    @property
    def b_number(self) -> str | None:
        """Side b as a number key, or None when b is a contact."""
        return None if self.b_is_contact else self.b

    @property
    def b_contact(self) -> str | None:
        """Side b as a contact's E.164 number, or None when b is a bot."""
        return self.b if self.b_is_contact else None


class Topic(Model):
    """A conversation topic (t_topics): seed text and prompt, optionally limited to a date range."""

    seed: str = Field(min_length=1, description="What the talk is about, in a sentence (fed to the generator).")
    system_prompt: str = Field("", description="Extra instructions for the AI on this topic. Default ''.")
    active_from: date | None = Field(None, description="First day the topic may be used. Default: no limit.")
    active_to: date | None = Field(None, description="Last day the topic may be used (>= active_from). Default: none.")
    weight: Int32 = Field(1, gt=0, description="Relative weight for topic_strategy weighted. Default 1.")
    previous_keys: list[Key] = previous_keys()


class ConversationDefaults(Model):
    """Tenant-wide `defaults:` merged into every conversation; the conversation's own value wins."""

    mode: Mode | None = Field(None, description="Default mode. Default: none (the conversation's default, pair).")
    active: bool | None = Field(None, description="Default for active. Default: none (true).")
    openai_model: str | None = Field(None, description="Default model. Default: none (gpt-4o-mini).")
    temperature: float | None = Field(None, ge=0, le=2, description="Default temperature. Default: none (0.8).")
    exchanges: Exchanges | None = Field(None, description="Default exchanges. Default: none ({min: 2, max: 4}).")
    topic_strategy: TopicStrategy | None = Field(None, description="Default topic strategy. Default: none (rotate).")
    topic_refresh_minutes: Int32 | None = Field(None, gt=0, description="Default refresh. Default: none (180).")
    settings: ConversationSettings | None = Field(
        None, description="Default overrides, merged key by key. Default: none."
    )
    schedule: ScheduleSpec | None = Field(
        None,
        description="Default schedule, under the conversation's own: any window, round cap or pause the "
        "conversation sets (even for every_day) beats this one. Default: none.",
    )


class _ConversationBase(Model):
    name: str = Field(min_length=1, description="Display name (t_conversations.name).")
    mode: Mode = Field("pair", description="pair | round_robin | random. Default pair.")
    active: bool = Field(True, description="Whether the schedulers run it. Default true.")
    openai_model: str = Field("gpt-4o-mini", min_length=1, description="OpenAI chat model. Default gpt-4o-mini.")
    temperature: float = Field(0.8, ge=0, le=2, description="Sampling temperature 0-2. Default 0.8.")
    exchanges: Exchanges = Field(default_factory=Exchanges, description="Exchanges per round. Default {min 2, max 4}.")
    topic_strategy: TopicStrategy = Field("rotate", description="rotate | random | weighted | sticky. Default rotate.")
    topic_refresh_minutes: Int32 = Field(180, gt=0, description="Minutes before the topic changes. Default 180.")
    participants: list[Participant] = Field(default_factory=list, description="Bots and humans taking part.")
    pairings: list[Pairing] = Field(
        default_factory=list,
        description="Explicit pairs (all among the participants), in the order round_robin takes them. "
        "Default []: any two.",
    )
    settings: ConversationSettings = Field(
        default_factory=ConversationSettings, description="Overrides of the tenant settings. Default: inherit all."
    )
    topics: dict[Key, Topic] = Field(default_factory=dict, description="Topics by key. Default {}.")
    previous_keys: list[Key] = previous_keys()


class ConversationSpec(_ConversationBase):
    """A conversation file as written in YAML (the key is the file name without .yaml)."""

    schedule: ScheduleSpec | None = Field(
        None,
        description="Weekly calendar; days may be groups (every_day, weekdays, weekend). Laid over the tenant's "
        "defaults.schedule, daypart by daypart. Default: the defaults' schedule, else never runs; null: never runs.",
    )


class Conversation(_ConversationBase):
    """A conversation after merging tenant defaults and expanding schedule groups into seven weekdays."""

    schedule: WeekSchedule | None = Field(None, description="Seven resolved weekdays, or None (never runs).")
