"""Evolution API v2. Import the submodules; this `__init__` imports nothing, so parsing stays light.

- `envelope`, `events`, `models`, `naming`, `schemas`: pure parsing and value types (webhook envelopes and
  events, the shapes Evolution answers with, instance names, the request-body rules Evolution checks). They
  may import only the standard library and `mirage.errors`; `.importlinter` forbids database, Redis, queue,
  HTTP, web, OpenAI and settings imports.
- `client`, `errors`: the httpx client and its errors. `lifecycle`, `onboarding`: the HTTP steps of an
  instance's life and of linking a phone (no SQL; `mirage.jobs.lifecycle` stores what they return).
"""
