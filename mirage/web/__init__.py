"""The Starlette service: webhooks, the metrics page, health."""
