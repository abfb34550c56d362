"""The pure runtime rules: calendar, cadence, rounds, outreach, quotas; functions of (state, now)."""
