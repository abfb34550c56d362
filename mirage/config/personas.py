"""Personas (`personas.yaml`, t_personas): how a number talks, for the AI prompt and the offline generator."""

from __future__ import annotations

from pydantic import Field

from mirage.config.types import Key, Model, previous_keys


class Greetings(Model):
    """Greetings by daypart (t_personas.greeting_morning / _afternoon / _evening)."""

    morning: list[str] = Field(default_factory=list, description="Morning greetings. Default [].")
    afternoon: list[str] = Field(default_factory=list, description="Afternoon greetings. Default [].")
    evening: list[str] = Field(default_factory=list, description="Evening greetings. Default [].")


class Phrases(Model):
    """Phrase banks of the offline generator (t_personas.phrases, jsonb by kind)."""

    comments: list[str] = Field(default_factory=list, description="Opening remarks after the greeting. Default [].")
    questions: list[str] = Field(default_factory=list, description="Light questions. Default [].")
    answers: list[str] = Field(default_factory=list, description="Replies to a question. Default [].")
    goodbyes: list[str] = Field(default_factory=list, description="Ways to close a round. Default [].")


class Persona(Model):
    """A persona: name, style notes for the AI, greetings, phrase banks and how often to use emojis."""

    name: str = Field(min_length=1, description='The persona\'s name ("Tio Zé").')
    style: str = Field("", description="How it writes, for the AI system prompt. Default ''.")
    greetings: Greetings = Field(default_factory=Greetings, description="Greetings by daypart. Default: none.")
    phrases: Phrases = Field(default_factory=Phrases, description="Offline generator phrase banks. Default: none.")
    emoji_rate: float = Field(0.3, ge=0, le=1, description="Share of messages with an emoji, 0-1. Default 0.3.")
    previous_keys: list[Key] = previous_keys()


class PersonasFile(Model):
    """`personas.yaml`."""

    personas: dict[Key, Persona] = Field(default_factory=dict, description="Personas by key. Default {}.")
