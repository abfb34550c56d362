"""Desired state: tenant YAML -> validated pydantic models (pure, no I/O beyond reading files)."""
