"""Webhook ingest: store each Evolution event once (t_webhook_events) and normalise it (t_messages, statuses)."""
