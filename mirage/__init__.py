"""Mirage: a GitOps orchestrator for fleets of WhatsApp numbers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mirage-whats-orchestrator")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
