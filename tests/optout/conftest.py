"""The runtime harness (real Postgres, Redis, the Evolution simulator over HTTP and Mirage's webhook app) for the
end-to-end opt-out tests."""

from tests.runtime.conftest import make_harness  # noqa: F401
