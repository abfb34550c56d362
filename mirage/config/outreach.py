"""Outreach policies (`outreach.yaml`, t_outreach_policies / t_outreach_targets): bot -> human campaigns."""

from __future__ import annotations

from pydantic import Field, model_validator

from mirage.config.types import DOWS, E164, Daypart, Dow, Int32, Key, Model, Tag, previous_keys

DEFAULT_OPTOUT_KEYWORDS = ["sair", "parar", "stop", "nao quero"]


def _default_dayparts() -> list[Daypart]:
    return ["morning", "afternoon"]


def _default_days() -> list[Dow]:
    return list(DOWS[1:6])


def _default_keywords() -> list[str]:
    return list(DEFAULT_OPTOUT_KEYWORDS)


class TargetSpec(Model):
    """A target as written: one contact (`contact: "+55…"`) or every contact with a tag (`tag: vip`)."""

    contact: E164 | None = Field(None, description="E.164 number of one contact. Set this or tag.")
    tag: Tag | None = Field(None, description="Every contact carrying this tag. Set this or contact.")
    priority: Int32 = Field(0, description="Higher goes first. Default 0.")

    @model_validator(mode="after")
    def _one_of(self) -> TargetSpec:
        if (self.contact is None) == (self.tag is None):
            raise ValueError("a target needs exactly one of `contact` or `tag`")
        return self


class OutreachTarget(Model):
    """A resolved target: one contact (tags expanded; duplicates keep the highest priority)."""

    contact: E164 = Field(description="E.164 number of the contact (t_outreach_targets.contact_id).")
    priority: Int32 = Field(0, description="Higher goes first. Default 0.")
    via_tags: list[Tag] = Field(default_factory=list, description="Tags that selected it; [] when listed by number.")


class _PolicyBase(Model):
    number: Key = Field(description="Key of the bot number that sends.")
    persona: Key | None = Field(None, description="Persona for outreach messages. Default: the number's persona.")
    daily_limit: Int32 = Field(20, gt=0, description="Most outreach messages per day from this policy. Default 20.")
    hourly_limit: Int32 = Field(5, gt=0, description="Most outreach messages per hour from this policy. Default 5.")
    max_rounds_per_contact: Int32 = Field(3, gt=0, description="Most rounds with one contact, ever. Default 3.")
    min_gap_minutes: Int32 = Field(30, ge=0, description="Least minutes between two messages to a contact. Default 30.")
    reply_wait_hours: Int32 = Field(
        24,
        ge=1,
        le=720,
        description="Hours to wait for the contact to answer our last message; no answer by then ends the target "
        "(done). 1..720. Default 24.",
    )
    dayparts: list[Daypart] = Field(
        default_factory=_default_dayparts,
        description="Dayparts outreach may run in: morning 06-12, afternoon 12-18, evening 18-24, never in quiet "
        "hours. Default [morning, afternoon].",
    )
    allow_days: list[Dow] = Field(
        default_factory=_default_days, description="Weekdays outreach may run. Default mon..fri."
    )
    optout_keywords: list[str] = Field(
        default_factory=_default_keywords,
        description="Words that stop everything for a contact, for good; any case, accents ignored. "
        "Default [sair, parar, stop, nao quero].",
    )
    active: bool = Field(True, description="Inactive policies send nothing (and enable no bot<->human). Default true.")
    previous_keys: list[Key] = previous_keys()


class OutreachPolicySpec(_PolicyBase):
    """An outreach policy as written in YAML."""

    targets: list[TargetSpec] = Field(default_factory=list, description="Contacts or tags to reach. Default [].")


class OutreachPolicy(_PolicyBase):
    """A policy after expanding tag targets (optout_keywords normalised: lower-case, no accents, no duplicates)."""

    targets: list[OutreachTarget] = Field(default_factory=list, description="One target per contact.")


class OutreachFile(Model):
    """`outreach.yaml`."""

    policies: dict[Key, OutreachPolicySpec] = Field(default_factory=dict, description="Policies by key. Default {}.")
