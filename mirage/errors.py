"""One error root for Mirage; every message is built from fields so callers can act on them."""

from __future__ import annotations

from dataclasses import dataclass, field


class MirageError(Exception):
    """Root of every error Mirage raises on purpose; the CLI maps it to a message and an exit code."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Problem:
    """One problem in a configuration file, located at path:line:col (1-based; 0 when unknown)."""

    path: str
    line: int
    col: int
    message: str
    severity: str = "error"  # error | warning
    rule: str | None = None  # lint rule id, when it comes from a lint rule

    def __str__(self) -> str:
        where = self.path
        if self.line:
            where += f":{self.line}:{self.col or 1}"
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        suffix = f" [{self.rule}]" if self.rule else ""
        return f"{where}: {prefix}{self.message}{suffix}"


class ConfigError(MirageError):
    """One or more problems in the tenant YAML; str() lists them as `path:line:col: message`."""

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def at(cls, path: str, line: int, col: int, message: str) -> ConfigError:
        return cls(Problem(path, line, col, message))


class SettingsError(MirageError):
    """An environment variable has a value Mirage cannot use."""

    def __init__(self, variable: str, reason: str) -> None:
        self.variable = variable
        self.reason = reason
        super().__init__(f"environment variable {variable}: {reason}")


class ServiceError(MirageError):
    """A backing service (Postgres, Redis, an embedded server) is unreachable or failed to start."""

    def __init__(self, service: str, reason: str) -> None:
        self.service = service
        self.reason = reason
        super().__init__(f"{service}: {reason}")


class PolicyError(MirageError):
    """An operation was refused by a safety policy (deletions not allowed, lint errors under --strict)."""

    exit_code = 3


@dataclass
class TemporaryError(MirageError):
    """A failure worth retrying later (5xx, timeout, lock busy); RQ jobs retry with backoff."""

    reason: str
    delay: float | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        MirageError.__init__(self, self.reason)


@dataclass
class PermanentError(MirageError):
    """A failure that retrying cannot fix (4xx, bad input); the job fails with this reason."""

    reason: str
    extra: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        MirageError.__init__(self, self.reason)
