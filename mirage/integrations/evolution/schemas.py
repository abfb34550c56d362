"""Evolution 2.3.6's request-body rules for the routes Mirage calls, and a checker that words failures as it does.

Evolution checks each body with the Node `jsonschema` package (`RouterBroker.dataValidate`) against the schemas in
`src/validate/*.schema.ts` and the webhook schema. The rules are restated here as data in the same vocabulary, and
`problems()` applies the few keywords they use in schema order: each failure reads as the failing keyword's own
`description` when it has one, else as `<path> <message>` with the leading `instance.` dropped. The simulator
answers them as Evolution's 400; the client refuses to send a body that has any (docs/evolution.md). Pure: no I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

Schema = Mapping[str, Any]

# EventController.events: what `/webhook/set` accepts in `webhook.events`.
EVENTS: tuple[str, ...] = (
    "APPLICATION_STARTUP",
    "QRCODE_UPDATED",
    "MESSAGES_SET",
    "MESSAGES_UPSERT",
    "MESSAGES_EDITED",
    "MESSAGES_UPDATE",
    "MESSAGES_DELETE",
    "SEND_MESSAGE",
    "SEND_MESSAGE_UPDATE",
    "CONTACTS_SET",
    "CONTACTS_UPSERT",
    "CONTACTS_UPDATE",
    "PRESENCE_UPDATE",
    "CHATS_SET",
    "CHATS_UPSERT",
    "CHATS_UPDATE",
    "CHATS_DELETE",
    "GROUPS_UPSERT",
    "GROUP_UPDATE",
    "GROUP_PARTICIPANTS_UPDATE",
    "CONNECTION_UPDATE",
    "LABELS_EDIT",
    "LABELS_ASSOCIATION",
    "CALL",
    "TYPEBOT_START",
    "TYPEBOT_CHANGE_STATUS",
    "REMOVE_INSTANCE",
    "LOGOUT_INSTANCE",
    "INSTANCE_CREATE",
    "INSTANCE_DELETE",
    "STATUS_INSTANCE",
)
# The flat `*Events` fields of /instance/create list only the first 26 (the instance events came later).
_FLAT_EVENTS: Final = {"type": "array", "minItems": 0, "items": {"type": "string", "enum": list(EVENTS[:26])}}
PRESENCES: tuple[str, ...] = ("unavailable", "available", "composing", "recording", "paused")
# What /instance/create accepts as `number` (and what Mirage sends as any phone number): digits first, two or more
# characters of [.@\w-] in all. The JSON schema matches it unanchored at the end, ASCII only.
NUMBER_PATTERN = r"^\d+[\.@\w-]+"


def _not_empty(*names: str) -> dict[str, Any]:
    """Evolution's `isNotEmpty`: when the object has no keys but these, each present one needs length >= 1."""
    return {
        "if": {"propertyNames": {"enum": list(names)}},
        "then": {
            "properties": {n: {"minLength": 1, "description": f'The "{n}" cannot be empty'} for n in names},
        },
    }


def _typed(kind: str, *names: str) -> dict[str, Any]:
    return {n: {"type": kind} for n in names}


_PHONE: Final = {"type": "string", "description": "Invalid format"}  # sendText / sendPresence `number`
_MENTIONED: Final = {
    "type": "array",
    "minItems": 1,
    "uniqueItems": True,
    "items": {"type": "string", "pattern": r"^\d+", "description": '"mentioned" must be an array of numeric strings'},
}

CREATE_INSTANCE: Final[Schema] = {
    "type": "object",
    "properties": {
        "instanceName": {"type": "string"},
        "token": {"type": "string"},
        "number": {"type": "string", "pattern": NUMBER_PATTERN},
        "businessId": {"type": "string"},
        "qrcode": {"type": "boolean"},
        # Spelled with a capital I in Evolution, so `integration` itself is checked only by the controller.
        "Integration": {"type": "string", "enum": ["WHATSAPP-BAILEYS", "WHATSAPP-BUSINESS", "EVOLUTION"]},
        **_typed("boolean", "rejectCall"),
        **_typed("string", "msgCall"),
        **_typed("boolean", "groupsIgnore", "alwaysOnline", "readMessages", "readStatus", "syncFullHistory"),
        **_typed("string", "wavoipToken", "proxyHost", "proxyPort", "proxyProtocol", "proxyUsername", "proxyPassword"),
        **_typed("string", "webhookUrl"),
        **_typed("boolean", "webhookByEvents", "webhookBase64"),
        "webhookEvents": _FLAT_EVENTS,
        "rabbitmqEnabled": {"type": "boolean"},
        "rabbitmqEvents": _FLAT_EVENTS,
        "natsEnabled": {"type": "boolean"},
        "natsEvents": _FLAT_EVENTS,
        "sqsEnabled": {"type": "boolean"},
        "sqsEvents": _FLAT_EVENTS,
        **_typed("string", "chatwootAccountId", "chatwootToken", "chatwootUrl"),
        **_typed("boolean", "chatwootSignMsg", "chatwootReopenConversation", "chatwootConversationPending"),
        **_typed("boolean", "chatwootImportContacts"),
        **_typed("string", "chatwootNameInbox"),
        **_typed("boolean", "chatwootMergeBrazilContacts", "chatwootImportMessages"),
        "chatwootDaysLimitImportMessages": {"type": "number"},
    },
    **_not_empty("instanceName"),
}

SET_PRESENCE: Final[Schema] = {
    "type": "object",
    "properties": {"presence": {"type": "string", "enum": list(PRESENCES)}},
    "required": ["presence"],
}

SET_WEBHOOK: Final[Schema] = {
    "type": "object",
    "properties": {
        "webhook": {
            "type": "object",
            "properties": {
                "enabled": {"type": "boolean"},
                "url": {"type": "string"},
                "headers": {"type": "object"},
                "byEvents": {"type": "boolean"},
                "base64": {"type": "boolean"},
                "events": {"type": "array", "minItems": 0, "items": {"type": "string", "enum": list(EVENTS)}},
            },
            "required": ["enabled", "url"],
            **_not_empty("enabled", "url"),
        },
    },
    "required": ["webhook"],
}

SEND_TEXT: Final[Schema] = {
    "type": "object",
    "properties": {
        "number": _PHONE,
        "text": {"type": "string"},
        "linkPreview": {"type": "boolean"},
        "delay": {"type": "integer", "description": "Enter a value in milliseconds"},
        "quoted": {
            "properties": {
                "key": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "remoteJid": {"type": "string"},
                        "fromMe": {"type": "boolean", "enum": [True, False]},
                    },
                    "required": ["id"],
                    **_not_empty("id"),
                },
                "message": {"type": "object"},
            },
        },
        "everyOne": {"type": "boolean", "enum": [True, False]},
        "mentioned": _MENTIONED,
    },
    "required": ["number", "text"],
}

SEND_PRESENCE: Final[Schema] = {
    "type": "object",
    "properties": {
        "number": _PHONE,
        "delay": {"type": "number"},
        "presence": {"type": "string", "enum": list(PRESENCES)},
    },
    "required": ["number", "presence", "delay"],
}

MARK_READ: Final[Schema] = {
    "type": "object",
    "properties": {
        "readMessages": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {  # no "type": an item that is not an object passes, and Evolution skips it
                "properties": {
                    "id": {"type": "string"},
                    "fromMe": {"type": "boolean", "enum": [True, False]},
                    "remoteJid": {"type": "string"},
                },
                "required": ["id", "fromMe", "remoteJid"],
                **_not_empty("id", "remoteJid"),
            },
        },
    },
    "required": ["readMessages"],
}

WHATSAPP_NUMBERS: Final[Schema] = {
    "type": "object",
    "properties": {
        "numbers": {  # not required: a body without it passes, then the controller fails (see the simulator)
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "description": '"numbers" must be an array of numeric strings'},
        },
    },
}


# -- the checker ---------------------------------------------------------------------------------------------------


class _Missing:
    """A property the body does not have (JavaScript's `undefined`): most keywords skip it."""


MISSING: Final = _Missing()
Check = Callable[[Any, Any, Schema, str, list[str]], None]


def problems(body: Any, schema: Schema) -> list[str]:
    """Every rule `body` breaks, worded as Evolution's 400 lists them; empty when Evolution would accept it."""
    out: list[str] = []
    _check(body, schema, "instance", out)
    return out


def is_valid(value: Any, schema: Schema) -> bool:
    return not problems(value, schema)


def _check(value: Any, schema: Schema, path: str, out: list[str]) -> None:
    for keyword, argument in schema.items():
        check = _KEYWORDS.get(keyword)
        if check is not None:
            check(value, argument, schema, path, out)


def _fail(schema: Schema, path: str, message: str, out: list[str]) -> None:
    described = schema.get("description")
    out.append(described if isinstance(described, str) else f"{path} {message}".replace("instance.", "", 1))


def _is(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "null":
        return value is None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind == "integer":  # JavaScript has one number type: 2.0 is an integer there
        return isinstance(value, int) or value.is_integer()
    return kind == "number" and (isinstance(value, int) or math.isfinite(value))


def _js(value: Any) -> str:
    """`String(value)` for the scalars an enum holds."""
    return "true" if value is True else "false" if value is False else "null" if value is None else str(value)


def same(a: Any, b: Any) -> bool:
    """JSON equality as JavaScript's strict comparison sees it: `true` is not `1`, `1` is `1.0`, key order ignored."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return isinstance(b, dict) and len(a) == len(b) and all(k in b and same(v, b[k]) for k, v in a.items())
    return type(a) is type(b) and a == b


def _suffix(key: str | int) -> str:
    """How the Node package writes a step of a path: `.name`, `[0]`, or `["odd key"]`."""
    text = str(key)
    if not re.search(r"[.\s\[\]]", text) and not re.match(r"\d", text):
        return "." + text
    if re.fullmatch(r"\d+", text, re.ASCII):
        return f"[{text}]"
    return f"[{json.dumps(text)}]"


def _type(value: Any, kinds: Any, schema: Schema, path: str, out: list[str]) -> None:
    names = kinds if isinstance(kinds, list) else [kinds]
    if value is not MISSING and not any(_is(k, value) for k in names):
        _fail(schema, path, "is not of a type(s) " + ",".join(names), out)


def _enum(value: Any, allowed: list[Any], schema: Schema, path: str, out: list[str]) -> None:
    if value is not MISSING and not any(same(value, a) for a in allowed):
        _fail(schema, path, "is not one of enum values: " + ",".join(_js(a) for a in allowed), out)


def _required(value: Any, names: list[str], schema: Schema, path: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for name in names:
            if name not in value:
                _fail(schema, path, "requires property " + json.dumps(name), out)


def _properties(value: Any, props: Mapping[str, Schema], schema: Schema, path: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for name, sub in props.items():
            _check(value.get(name, MISSING), sub, path + _suffix(name), out)


def _items(value: Any, sub: Schema, schema: Schema, path: str, out: list[str]) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, sub, path + _suffix(i), out)


def _min_items(value: Any, least: int, schema: Schema, path: str, out: list[str]) -> None:
    if isinstance(value, list) and len(value) < least:
        _fail(schema, path, f"does not meet minimum length of {least}", out)


def _unique_items(value: Any, on: bool, schema: Schema, path: str, out: list[str]) -> None:
    repeated = isinstance(value, list) and any(same(a, b) for i, a in enumerate(value) for b in value[i + 1 :])
    if on is True and repeated:
        _fail(schema, path, "contains duplicate item", out)


def _pattern(value: Any, pattern: str, schema: Schema, path: str, out: list[str]) -> None:
    if isinstance(value, str) and not re.search(pattern, value, re.ASCII):
        _fail(schema, path, "does not match pattern " + json.dumps(pattern), out)


def _min_length(value: Any, least: int, schema: Schema, path: str, out: list[str]) -> None:
    if isinstance(value, str) and len(value) < least:
        _fail(schema, path, f"does not meet minimum length of {least}", out)


def _property_names(value: Any, sub: Schema, schema: Schema, path: str, out: list[str]) -> None:
    if isinstance(value, dict):
        for name in value:
            _check(name, sub, path, out)


def _if(value: Any, condition: Schema, schema: Schema, path: str, out: list[str]) -> None:
    then = schema.get("then")
    if value is not MISSING and then is not None and is_valid(value, condition):
        _check(value, then, path, out)


_KEYWORDS: Final[dict[str, Check]] = {
    "type": _type,
    "enum": _enum,
    "required": _required,
    "properties": _properties,
    "items": _items,
    "minItems": _min_items,
    "uniqueItems": _unique_items,
    "pattern": _pattern,
    "minLength": _min_length,
    "propertyNames": _property_names,
    "if": _if,
}
