"""The pure runtime rules: calendar, cadence, rounds, outreach, quotas; functions of (state, now).

Layer: the pure core, with mirage.config (docs/architecture.md#layers). May import: mirage.config and
mirage.errors; never a database, Redis, queue or HTTP client, the settings or a shell layer (`pure-core`, `layers`).
"""
