# ruff: noqa: E501 - expected messages stay whole, one per line
"""Invalid configurations: each exits 1 and names every problem as file:line:col: message, exactly."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mirage.config import ConfigError, load_fleet
from tests.config.helpers import BASE, run, write_tenant

BASE_T = textwrap.dedent(BASE["tenant.yaml"])

CASES = [
    pytest.param(
        {
            "numbers.yaml": """\
        numbers:
          tio:
            label: Tio
            label: Tio Zé
            number: "+5511999990001"
            persona: tio
          tia: {label: Tia, number: "+5511999990002"}
        """
        },
        [
            "tenants.d/acme/numbers.yaml:4:5: duplicate key 'label' (first at line 3)",
        ],
        id="duplicate-yaml-key",
    ),
    pytest.param(
        {
            "tenant.yaml": """\
        name: Acme
        settings:
          min_delay_ms: 4000
         max_delay_ms: 20000
        """
        },
        [
            "tenants.d/acme/tenant.yaml:4:2: YAML syntax error: did not find expected key",
        ],
        id="syntax-error",
    ),
    pytest.param(
        {
            "personas.yaml": """\
        a: &a [x, x, x, x, x, x, x, x, x, x]
        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
        d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
        e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
        f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
        personas: {}
        """
        },
        [
            "tenants.d/acme/personas.yaml:5:4: aliases of this anchor expand past 500000 values (a YAML alias bomb?)",
        ],
        id="alias-bomb",
    ),
    pytest.param(
        {"contacts.yaml": "contacts:\n" + "  # padding padding padding padding padding padding\n" * 22000},
        [
            "tenants.d/acme/contacts.yaml:1:1: file is 1144010 bytes, over the 1024 KiB limit",
        ],
        id="oversized-file",
    ),
    pytest.param(
        {"personas.yaml": "personas:\n  tio:\n    name: Jos\xe9\n".encode("latin-1")},
        [
            "tenants.d/acme/personas.yaml:3:14: not UTF-8 (byte 0xe9); save the file as UTF-8",
        ],
        id="not-utf8",
    ),
    pytest.param(
        {"tenant.yaml": BASE_T.replace("  min_delay_ms: 4000", "  min_delay: 4000")},
        [
            "tenants.d/acme/tenant.yaml:4:3: unknown key 'min_delay' (did you mean 'min_delay_ms'?)",
        ],
        id="unknown-key-with-hint",
    ),
    pytest.param(
        {
            "numbers.yaml": """\
        numbers:
          tio: {label: Tio, persona: tio}
          tia: {label: Tia, number: "+5511999990002"}
        """
        },
        [
            "tenants.d/acme/numbers.yaml:2:3: missing required key 'number'",
        ],
        id="missing-required-key",
    ),
    pytest.param(
        {
            "numbers.yaml": """\
        numbers:
          tio: {label: Tio, number: "11 99999-0001"}
          tia: {label: Tia, number: "+5511999990002"}
        """
        },
        [
            "tenants.d/acme/numbers.yaml:2:29: number: '11 99999-0001' is not an E.164 number like +5511987654321",
        ],
        id="not-e164",
    ),
    pytest.param(
        {"tenant.yaml": BASE_T.replace("America/Sao_Paulo", "America/Sao_Paolo")},
        [
            "tenants.d/acme/tenant.yaml:2:11: timezone: unknown time zone 'America/Sao_Paolo' (use an IANA name such as America/Sao_Paulo)",
        ],
        id="unknown-timezone",
    ),
    pytest.param(
        {"tenant.yaml": BASE_T.replace("${EVOLUTION_API_KEY}", "B6D711FCDE4D4FD5936544120E713976")},
        [
            "tenants.d/acme/tenant.yaml:9:12: api_key: must be an ${ENV_VAR} reference, not a literal (secrets in YAML end up in git)",
        ],
        id="literal-secret",
    ),
    pytest.param(
        {
            "numbers.yaml": """\
        numbers:
          tio: {label: Tio, number: "+5511999990001", persona: tioo}
          tia: {label: Tia, number: "+5511999990002", persona: vovo}
        """
        },
        [
            "tenants.d/acme/numbers.yaml:2:56: unknown persona 'tioo' (did you mean 'tio'?)",
            "tenants.d/acme/numbers.yaml:3:56: unknown persona 'vovo' (personas.yaml defines: tio)",
        ],
        id="unknown-persona-on-number",
    ),
    pytest.param(
        {
            "outreach.yaml": """\
        policies:
          vip: {number: tio, persona: tia, targets: [{tag: vip}]}
        """
        },
        [
            "tenants.d/acme/outreach.yaml:2:31: unknown persona 'tia' (did you mean 'tio'?)",
        ],
        id="unknown-persona-on-policy",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants:
          - {number: tio}
          - {number: tiaa}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:4:14: unknown number 'tiaa' (did you mean 'tia'?)",
        ],
        id="unknown-number-participant",
    ),
    pytest.param(
        {
            "outreach.yaml": """\
        policies:
          vip: {number: ghost, targets: [{tag: vip}]}
        """
        },
        [
            "tenants.d/acme/outreach.yaml:2:17: unknown number 'ghost' (numbers.yaml defines: tia, tio)",
        ],
        id="unknown-number-policy",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants:
          - {number: tio}
          - {contact: "+5511777770000"}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:4:15: unknown contact +5511777770000 (not in contacts)",
        ],
        id="unknown-contact-participant",
    ),
    pytest.param(
        {
            "outreach.yaml": """\
        policies:
          vip:
            number: tio
            targets:
              - {contact: "+5511777770000"}
        """
        },
        [
            "tenants.d/acme/outreach.yaml:5:19: unknown contact +5511777770000 (not in contacts)",
        ],
        id="unknown-contact-target",
    ),
    pytest.param(
        {
            "outreach.yaml": """\
        policies:
          vip:
            number: tio
            targets:
              - {tag: vips}
        """
        },
        [
            "tenants.d/acme/outreach.yaml:5:15: unknown tag 'vips' (did you mean 'vip'?)",
        ],
        id="unknown-tag-target",
    ),
    pytest.param(
        {
            "numbers.yaml": """\
        numbers:
          tio: {label: Tio, number: "+5511999990001"}
          tia: {label: Tia, number: "+5511999990001"}
        """
        },
        [
            "tenants.d/acme/numbers.yaml:3:29: +5511999990001 is already number 'tio'",
        ],
        id="duplicate-wa-number",
    ),
    pytest.param(
        {
            "contacts.yaml": """\
        contacts:
          - {number: "+5511888880001", tags: [vip]}
          - {number: "+5511888880001", name: Rosa de novo}
        """
        },
        [
            "tenants.d/acme/contacts.yaml:3:14: duplicate contact +5511888880001 (each number may appear once)",
        ],
        id="duplicate-contact",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants:
          - {number: tio}
          - {number: tia}
          - {number: tio, role: starter}
        pairings:
          - {a: tio, b: tia}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:5:5: duplicate participant 'tio'",
        ],
        id="duplicate-participant",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {number: tia}]
        pairings:
          - {a: tio, b: tia}
          - {a: tia, b: tio}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:5:5: duplicate pairing tia <-> tio",
        ],
        id="duplicate-pairing",
    ),
    pytest.param(
        {"tenant.yaml": BASE_T.replace("viewers: [bob@acme.com]", "viewers: [bob@acme.com, Ana@Acme.com]")},
        [
            "tenants.d/acme/tenant.yaml:12:25: 'ana@acme.com' is already a member; list each person once",
        ],
        id="duplicate-member",
    ),
    pytest.param(
        {"tenant.yaml": BASE_T.replace("max_delay_ms: 20000", "max_delay_ms: 3000")},
        [
            "tenants.d/acme/tenant.yaml:5:17: max_delay_ms (3000) is less than min_delay_ms (4000)",
        ],
        id="delay-min-above-max",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {number: tia}]
        exchanges: {min: 5, max: 3}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:3:26: exchanges max (3) is less than min (5)",
        ],
        id="exchanges-min-above-max",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {number: tia}]
        schedule:
          pause_between_rounds: {min: 90, max: 30}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:4:40: pause max (30) is less than min (90)",
        ],
        id="pause-min-above-max",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {number: tia}]
        settings: {max_delay_ms: 2000}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:3:26: max_delay_ms (2000) is less than min_delay_ms (4000, the tenant's)",
        ],
        id="conversation-delay-below-tenant-min",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {number: tia}]
        schedule:
          days:
            fri:
              evening: {start: "21:00", end: "01:00"}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:6:38: window ends at 01:00, not after it starts at 21:00 (only quiet hours may cross midnight)",
        ],
        id="window-ends-before-start",
    ),
    pytest.param(
        {"tenant.yaml": BASE_T.replace('{start: "22:00", end: "07:00"}', '{start: "22:00", end: "22:00"}')},
        [
            "tenants.d/acme/tenant.yaml:6:38: quiet hours start and end are equal: set a span such as 22:00-07:00",
        ],
        id="quiet-hours-empty",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {number: tia}]
        schedule:
          days:
            weekdays:
              morning: {start: "08:00", end: "12:00"}
            mon:
              afternoon: {start: "11:30", end: "15:00"}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:8:18: afternoon window 11:30-15:00 overlaps the morning window 08:00-12:00 on mon",
        ],
        id="overlapping-dayparts",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {number: tia}]
        pairings:
          - {a: tio, b: tia}
          - {a: tio, b: "+5511888880001"}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:5:17: pairing side b '+5511888880001' is not a participant of this conversation",
        ],
        id="pairing-outside-participants",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tia}, {contact: "+5511888880001"}]
        pairings:
          - {a: tia, b: "+5511888880001"}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:4:17: number 'tia' has no active outreach policy: bot<->human is off by default",
        ],
        id="bot-human-pairing-without-policy",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        mode: random
        participants:
          - {number: tio}
          - {number: tia}
          - {contact: "+5511888880001"}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:6:15: a human here needs an active outreach policy on 'tia': bot<->human is off by default",
        ],
        id="bot-human-participant-without-policy",
    ),
    pytest.param(
        {
            "outreach.yaml": """\
        policies:
          vip: {number: tio, active: false, targets: [{tag: vip}]}
        """,
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {contact: "+5511888880002"}]
        """,
        },
        [
            "tenants.d/acme/conversations/chat.yaml:2:41: a human here needs an active outreach policy on 'tio': bot<->human is off by default",
        ],
        id="bot-human-inactive-policy",
    ),
    pytest.param(
        {
            "outreach.yaml": """\
        policies:
          vip:
            number: tio
            optout_keywords: [SAIR, Parar, sair, "NÃO QUERO", "nao quero!"]
            targets: [{tag: vip}]
        """
        },
        [
            "tenants.d/acme/outreach.yaml:4:36: opt-out keyword 'sair' repeats 'SAIR' (case and accents are ignored)",
            "tenants.d/acme/outreach.yaml:4:55: opt-out keyword 'nao quero!' repeats 'NÃO QUERO' (case and accents are ignored)",
        ],
        id="optout-keywords-repeat-after-normalising",
    ),
    pytest.param(
        {
            "outreach.yaml": """\
        policies:
          vip:
            number: tio
            optout_keywords: [SAIR, "🙅"]
            targets: [{tag: vip}]
        """
        },
        [
            "tenants.d/acme/outreach.yaml:4:29: opt-out keyword '🙅' has no letters or digits",
        ],
        id="optout-keyword-without-letters",
    ),
    pytest.param(
        {
            "outreach.yaml": """\
        policies:
          vip:
            number: tio
            optout_keywords: [SAIR, no]
            targets: [{tag: vip}]
        """
        },
        [
            "tenants.d/acme/outreach.yaml:4:29: optout_keywords[1]: expected text; quote it (YAML reads yes/no/on/off as true/false)",
        ],
        id="optout-keyword-boolean",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {number: tia}]
        topics:
          natal: {seed: A ceia, active_from: 2026-12-20, active_to: 2026-12-01}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:4:61: active_to (2026-12-01) is before active_from (2026-12-20)",
        ],
        id="topic-dates-reversed",
    ),
    pytest.param(
        {
            "personas.yaml": """\
        personas:
          tio: {name: Tio}
          Tia_Neide: {name: Tia}
        """
        },
        [
            "tenants.d/acme/personas.yaml:3:3: 'Tia_Neide' is not a valid key: use 1-63 lower-case letters, digits, '-' or '_'",
        ],
        id="invalid-key",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {number: tia}]
        schedule:
          days:
            weekday:
              morning: {start: "08:00", end: "11:00"}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:5:5: key 'weekday' should be 'sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'every_day', 'weekdays' or 'weekend'",
        ],
        id="unknown-day-group",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {number: tia}]
        schedule:
          days:
            sat:
              morning: {start: "08:00"}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:6:16: morning: an enabled window needs both start and end",
        ],
        id="enabled-window-without-end",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants:
          - {number: tio}
          - {number: tia, contact: "+5511888880001"}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:4:5: participants[1]: a participant needs exactly one of `number` or `contact`",
        ],
        id="participant-number-and-contact",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        mode: pair
        participants: [{number: tio}, {number: tia}, {number: tio2}]
        """,
            "numbers.yaml": """\
        numbers:
          tio: {label: Tio, number: "+5511999990001"}
          tia: {label: Tia, number: "+5511999990002"}
          tio2: {label: Tio 2, number: "+5511999990003"}
        """,
        },
        [
            "tenants.d/acme/conversations/chat.yaml:2:7: mode pair with more than two participants needs `pairings`",
        ],
        id="pair-mode-needs-pairings",
    ),
    pytest.param(
        {
            "outreach.yaml": """\
        policies:
          vip: {number: tio, daily_limit: 5, hourly_limit: 8, targets: [{tag: vip}]}
        """
        },
        [
            "tenants.d/acme/outreach.yaml:2:52: hourly_limit (8) is more than daily_limit (5)",
        ],
        id="hourly-limit-above-daily",
    ),
    *(
        pytest.param(
            {
                "outreach.yaml": f"""\
        policies:
          vip: {{number: tio, reply_wait_hours: {hours}, targets: [{{tag: vip}}]}}
        """
            },
            [f"tenants.d/acme/outreach.yaml:2:40: reply_wait_hours: should be {bound}"],
            id=f"reply-wait-hours-{hours}",
        )
        for hours, bound in ((0, "greater than or equal to 1"), (721, "less than or equal to 720"))
    ),
    pytest.param(
        {
            "contacts.yaml": """\
        contacts:
          - {number: "+5511888880001", tags: [vip]}
          - {number: "+5511999990002", name: A tia}
        """
        },
        [
            "tenants.d/acme/contacts.yaml:3:14: +5511999990002 is the tenant's bot number 'tia'",
        ],
        id="contact-is-a-bot-number",
    ),
    pytest.param(
        {
            "personas.yaml": """\
        personas:
          tio: {name: Tio}
          tia: {name: Tia, previous_keys: [tio]}
        """
        },
        [
            "tenants.d/acme/personas.yaml:3:36: previous key 'tio' is the current key of another persona",
        ],
        id="previous-key-is-current-key",
    ),
    pytest.param(
        {
            "personas.yaml": """\
        personas:
          tio: !!python/object:os.system {name: Tio}
        """
        },
        [
            "tenants.d/acme/personas.yaml:2:8: unsupported YAML tag 'tag:yaml.org,2002:python/object:os.system'",
        ],
        id="unsupported-yaml-tag",
    ),
    pytest.param(
        {
            "tenant.yaml": BASE_T
            + textwrap.dedent("""\
        defaults:
          schedule:
            days:
              weekdays:
                evening: {start: "19:00", end: "18:00"}
        """)
        },
        [
            "tenants.d/acme/tenant.yaml:17:40: window ends at 18:00, not after it starts at 19:00 (only quiet hours may cross midnight)",
        ],
        id="defaults-error-points-at-tenant-yaml",
    ),
    pytest.param(
        {
            "contacts.yaml": None,
            "contacts.csv": "number,name,tags,notes\n+5511888880001,Rosa,vip,\n+5511888880002,Antonio\n",
        },
        [
            "tenants.d/acme/contacts.csv:3:1: expected 4 fields, found 2",
        ],
        id="contacts-csv-bad-row",
    ),
    pytest.param(
        {
            "contacts.yaml": None,
            "contacts.csv": "\ufeffnumber,name,tags,notes\n+5511888880001,Rosa,vip,\n011 8888-0002,Antonio,vip;novo,indicado\n",
        },
        [
            "tenants.d/acme/contacts.csv:3:1: number: '011 8888-0002' is not an E.164 number like +5511987654321",
        ],
        id="contacts-csv-bad-number",
    ),
    pytest.param(
        {"contacts.csv": "number,name,tags,notes\n+5511888880001,Rosa,vip,\n"},
        [
            "tenants.d/acme/contacts.csv: both contacts.yaml and contacts.csv exist: keep one",
        ],
        id="contacts-yaml-and-csv",
    ),
    pytest.param(
        {"tenant.yaml": None},
        [
            "tenants.d/acme: missing tenant.yaml",
        ],
        id="missing-tenant-yaml",
    ),
    pytest.param(
        {"number.yaml": "numbers: {}\n"},
        [
            "tenants.d/acme/number.yaml: unexpected file (expected tenant.yaml, numbers.yaml, personas.yaml, contacts.yaml or contacts.csv, outreach.yaml, conversations/<key>.yaml)",
        ],
        id="unexpected-file",
    ),
    pytest.param(
        {
            "tenant.yaml": BASE_T + "defaults: &d\n  <<: *d\n",
            "conversations/chat.yaml": textwrap.dedent(BASE["conversations/chat.yaml"]) + "bogus: 1\n",
        },
        [
            "tenants.d/acme/conversations/chat.yaml:11:1: unknown key 'bogus'",
            "tenants.d/acme/tenant.yaml:13:11: nesting deeper than 64 levels",
        ],
        id="self-merging-mapping",
    ),
    pytest.param(
        {
            "contacts.yaml": """\
        contacts:
          - {number: "+5511888880001", name: Rosa, tags: [vip], previous_numbers: ["+5511888889999"]}
          - {number: "+5511888880002", name: Antonio, tags: [vip], previous_numbers: ["+5511888889999"]}
        """
        },
        [
            "tenants.d/acme/contacts.yaml:3:79: previous number +5511888889999 is also claimed by +5511888880001",
        ],
        id="previous-number-claimed-twice",
    ),
    pytest.param(
        {
            "personas.yaml": "personas:\n  tio: {name: Tio, emoji_rate: 0x_}\n  tia: {name: Tia, emoji_rate: "
            + "9" * 5000
            + "}\n"
        },
        [
            "tenants.d/acme/personas.yaml:2:32: emoji_rate: expected a number",
            "tenants.d/acme/personas.yaml:3:32: emoji_rate: should be less than or equal to 1",
        ],
        id="numbers-python-cannot-convert",
    ),
    pytest.param(
        {"tenant.yaml": BASE_T.replace("max_delay_ms: 20000", "max_delay_ms: 3000000000")},
        [
            "tenants.d/acme/tenant.yaml:5:17: max_delay_ms: 3000000000 is above 2147483647, the largest whole number the database stores",
        ],
        id="integer-above-int4",
    ),
    pytest.param(
        {
            "outreach.yaml": """\
        policies:
          vip:
            number: tio
            targets:
              - {tag: vip, priority: -2147483649}
        """
        },
        [
            "tenants.d/acme/outreach.yaml:5:30: priority: -2147483649 is below -2147483648, the smallest whole number the database stores",
        ],
        id="integer-below-int4-without-own-lower-bound",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {number: tia}]
        settings: {hourly_burst_limit: 2147483648}
        topics:
          futebol: {seed: O jogo, weight: 99999999999999999999999999999999999999999999999999999999999999999999}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:3:32: hourly_burst_limit: 2147483648 is above 2147483647, the largest whole number the database stores",
            "tenants.d/acme/conversations/chat.yaml:5:35: weight: the number is above 2147483647, the largest whole number the database stores",
        ],
        id="integer-above-int4-optional-and-huge",
    ),
    pytest.param(
        {
            "tenant.yaml": BASE_T
            + textwrap.dedent("""\
        defaults:
          schedule:
            days:
              sat: {max_rounds_per_window: 2147483648}
        """)
        },
        [
            "tenants.d/acme/tenant.yaml:16:36: max_rounds_per_window: 2147483648 is above 2147483647, the largest whole number the database stores",
        ],
        id="integer-above-int4-in-defaults",
    ),
    pytest.param(
        {
            "personas.yaml": """\
        personas:
          tio:
            name: "Tio\\0"
            greetings: {morning: [Bom dia, "Oi\\u0000 sumido"]}
        """
        },
        [
            "tenants.d/acme/personas.yaml:3:11: text contains a NUL character (\\u0000), which the database cannot store",
            "tenants.d/acme/personas.yaml:4:36: text contains a NUL character (\\u0000), which the database cannot store",
        ],
        id="nul-in-text",
    ),
    pytest.param(
        {
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {number: tia}]
        topics:
          "futebol\\x00": {seed: !!str "O jogo\\x00"}
        """
        },
        [
            "tenants.d/acme/conversations/chat.yaml:4:3: 'futebol\\x00' is not a valid key: use 1-63 lower-case letters, digits, '-' or '_'",
            "tenants.d/acme/conversations/chat.yaml:4:3: text contains a NUL character (\\u0000), which the database cannot store",
            "tenants.d/acme/conversations/chat.yaml:4:25: text contains a NUL character (\\u0000), which the database cannot store",
        ],
        id="nul-in-key-and-tagged-text",
    ),
    pytest.param(
        {
            "contacts.yaml": None,
            "contacts.csv": "number,name,tags,notes\n+5511888880001,Rosa,vip,\n+5511888880002,Antonio,vip,liga\x00depois\n",
        },
        [
            "tenants.d/acme/contacts.csv:3:28: text contains a NUL character (\\u0000), which the database cannot store",
        ],
        id="nul-in-contacts-csv",
    ),
    pytest.param(
        {
            "tenant.yaml": BASE_T
            + textwrap.dedent("""\
        defaults:
          schedule:
            days:
              weekdays:
                afternoon: {start: "11:00", end: "15:00"}
        """),
            "conversations/chat.yaml": """\
        name: Chat
        participants: [{number: tio}, {number: tia}]
        schedule:
          days:
            every_day:
              morning: {start: "08:00", end: "12:00"}
        """,
        },
        [
            "tenants.d/acme/tenant.yaml:17:20: afternoon window 11:00-15:00 overlaps the morning window 08:00-12:00 on mon, tue, wed, thu, fri",
        ],
        id="overlap-between-conversation-and-defaults",
    ),
]


@pytest.mark.parametrize(("files", "expected"), CASES)
def test_invalid_configuration_exits_1_with_each_problem_located(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str | bytes | None], expected: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write_tenant(Path("tenants.d"), {k: textwrap.dedent(v) if isinstance(v, str) else v for k, v in files.items()})
    result = run("validate", "tenants.d")
    assert result.exit_code == 1
    *problems, summary = result.stdout.splitlines()
    assert problems == expected
    assert summary == f"{len(expected)} problem(s) found"


@pytest.mark.parametrize(("files", "expected"), CASES[:12])
def test_json_format_carries_path_line_col_and_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str | bytes | None], expected: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write_tenant(Path("tenants.d"), {k: textwrap.dedent(v) if isinstance(v, str) else v for k, v in files.items()})
    result = run("validate", "tenants.d", "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    rendered = [f"{p['path']}:{p['line']}:{p['col']}: {p['message']}" for p in doc["problems"]]
    assert rendered == expected


def test_load_fleet_raises_one_config_error_listing_problems_of_every_tenant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_tenant(Path("t"), {"numbers.yaml": 'numbers:\n  tio: {label: Tio, number: "+55"}\n'}, slug="one")
    write_tenant(Path("t"), {"tenant.yaml": "name: Two\ntimezone: Mars/Olympus\n"}, slug="two")
    with pytest.raises(ConfigError) as e:
        load_fleet(Path("t"))
    assert [str(p) for p in e.value.problems] == [
        "t/one/numbers.yaml:2:29: number: '+55' is not an E.164 number like +5511987654321",
        "t/two/tenant.yaml:2:11: timezone: unknown time zone 'Mars/Olympus' (use an IANA name such as "
        "America/Sao_Paulo)",
    ]


def test_a_literal_secret_never_appears_in_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    secret = "B6D711FCDE4D4FD5936544120E713976"
    write_tenant(Path("tenants.d"), {"tenant.yaml": BASE_T.replace("${EVOLUTION_API_KEY}", secret)})
    for fmt in ("text", "json", "github"):
        result = run("validate", "tenants.d", "--format", fmt)
        assert result.exit_code == 1
        assert secret not in result.output


def test_github_format_prints_workflow_annotations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_tenant(Path("tenants.d"), {"tenant.yaml": BASE_T.replace("America/Sao_Paulo", "Brazil/Nowhere")})
    result = run("validate", "tenants.d", "--format", "github")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "::error file=tenants.d/acme/tenant.yaml,line=2,col=11::timezone: unknown time zone 'Brazil/Nowhere' "
        "(use an IANA name such as America/Sao_Paulo)"
    )
