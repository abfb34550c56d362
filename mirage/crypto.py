"""Secrets at rest: MultiFernet ciphertexts bound to their row, keyed by MIRAGE_SECRET_KEYS.

The first key encrypts and every key decrypts, so rotation is: prepend a new key, run
`mirage keys rotate`, then drop the old key. A ciphertext carries a digest of where it belongs
(table, row id, field); decrypting it anywhere else fails, so a value copied to another row is useless.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from mirage.errors import MirageError
from mirage.logs import register_secret
from mirage.reconcile.sealing import fingerprint as fingerprint  # the pure helper, kept importable here
from mirage.settings import Settings, get_settings

log = logging.getLogger(__name__)

_MAGIC = b"mirage1"


class CryptoError(MirageError):
    """A secret could not be encrypted or decrypted (no keys, a wrong key, or a ciphertext from another row)."""


def _binding(table: str, row_id: object, field: str) -> bytes:
    return hashlib.sha256(f"{table}\x1f{row_id}\x1f{field}".encode()).digest()[:16]


@dataclass(frozen=True)
class Keyring:
    """The Fernet keys in use; `keys[0]` encrypts."""

    keys: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise CryptoError("no secret keys: set MIRAGE_SECRET_KEYS (generate one with `mirage keys generate`)")
        for k in self.keys:
            register_secret(k)
        try:
            self._fernet()
        except (ValueError, TypeError) as e:
            raise CryptoError("MIRAGE_SECRET_KEYS holds a value that is not a Fernet key") from e

    def _fernet(self) -> MultiFernet:
        return _multi_fernet(self.keys)

    def encrypt(self, plaintext: str, *, table: str, row_id: object, field: str) -> bytes:
        """Encrypt `plaintext` for exactly one place: (table, row_id, field)."""
        payload = _MAGIC + b"|" + _binding(table, row_id, field) + plaintext.encode("utf-8")
        return self._fernet().encrypt(payload)

    def decrypt(self, token: bytes | memoryview, *, table: str, row_id: object, field: str) -> str:
        """Decrypt a ciphertext made for (table, row_id, field); anything else raises CryptoError."""
        try:
            payload = self._fernet().decrypt(bytes(token))
        except InvalidToken as e:
            raise CryptoError(f"{table}.{field} of {row_id}: cannot decrypt (unknown key or damaged value)") from e
        head = _MAGIC + b"|"
        expected = _binding(table, row_id, field)
        got = payload[len(head) : len(head) + len(expected)]
        if not payload.startswith(head) or not hmac.compare_digest(got, expected):
            raise CryptoError(f"{table}.{field} of {row_id}: ciphertext belongs to another row or field")
        value = payload[len(head) + len(expected) :].decode("utf-8")
        register_secret(value)
        return value

    def reencrypt(self, token: bytes | memoryview, *, table: str, row_id: object, field: str) -> bytes:
        """Decrypt (checking the value belongs to this row and field) and encrypt again under the first key."""
        return self.encrypt(
            self.decrypt(token, table=table, row_id=row_id, field=field), table=table, row_id=row_id, field=field
        )

    def rotate(self, token: bytes | memoryview) -> bytes:
        """Re-encrypt under the first key, keeping the plaintext and its binding."""
        try:
            return self._fernet().rotate(bytes(token))
        except InvalidToken as e:
            raise CryptoError("cannot rotate a value no configured key decrypts") from e


def generate_key() -> str:
    return Fernet.generate_key().decode()


def secret_hash(value: str) -> str:
    """sha256 hex of a secret, for lookups (token_hash) without keeping the value."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _state_key_file(settings: Settings) -> Path:
    return settings.state_dir.resolve() / "secret_keys"


def prepend_local_key(key: str, settings: Settings | None = None) -> Path:
    """Put `key` first in the embedded set-up's key file (only when MIRAGE_SECRET_KEYS is unset); returns the file."""
    s = settings or get_settings()
    if s.secret_keys is not None:
        raise CryptoError("MIRAGE_SECRET_KEYS is set: prepend the new key there, not in the local key file")
    if s.database_url is not None:
        raise CryptoError("the local key file only serves the embedded database; set MIRAGE_SECRET_KEYS instead")
    Keyring((key,))  # refuse anything that is not a Fernet key before touching the file
    path = _state_key_file(s)
    current = [k.strip() for k in path.read_text().split(",") if k.strip()] if path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(",".join([key, *current]) + "\n")
    os.replace(tmp, path)
    return path


@functools.lru_cache(maxsize=16)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    """The Fernet objects of a key set, made once per process (they hold no state but the keys; thread-safe)."""
    return MultiFernet([Fernet(k.encode()) for k in keys])


def keyring(settings: Settings | None = None) -> Keyring:
    """The keyring from MIRAGE_SECRET_KEYS; for embedded (local) set-ups only, a key kept in the state folder.

    Production sets MIRAGE_SECRET_KEYS. When it is unset and Postgres is embedded, Mirage creates a key in
    `<state>/secret_keys` (mode 0600, never committed) so a local demo works, and says so in the log.
    """
    s = settings or get_settings()
    if s.secret_keys is not None:
        return Keyring(tuple(k.strip() for k in s.secret_keys.get_secret_value().split(",") if k.strip()))
    if s.database_url is not None:
        raise CryptoError("MIRAGE_SECRET_KEYS is unset (required with DATABASE_URL); run `mirage keys generate`")
    path = _state_key_file(s)
    if not path.exists():
        _create_local_key(path)
    return Keyring(tuple(k.strip() for k in path.read_text().split(",") if k.strip()))


def _create_local_key(path: Path) -> None:
    """Write a new key file atomically: written aside, then linked into place only if none exists yet.

    Two processes starting together on a fresh state folder both end up reading the one key that won;
    neither can see a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    tmp = Path(name)
    with os.fdopen(fd, "w") as f:
        f.write(generate_key() + "\n")
    try:
        os.link(tmp, path)  # fails if another process got there first: its key wins
    except FileExistsError:
        return
    finally:
        tmp.unlink(missing_ok=True)
    log.warning("MIRAGE_SECRET_KEYS is unset: created a local key for the embedded database", extra={"path": str(path)})
