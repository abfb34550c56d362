"""Mirage: a GitOps orchestrator for fleets of WhatsApp numbers.

The version lives here, read by the build (pyproject's dynamic version) and by `mirage --version` without
loading package metadata (the CLI's import budget, bench/cli.py).
"""

__version__ = "0.2.0"
