"""API keys of `ingest-http`: each bound to the projects it may write; only a hash is stored.

A key reads `upk_<id>_<secret>`: `id` (8 hex digits) names it in `keys list` and
`keys revoke`, `secret` is 32 random bytes (256 bits) in URL-safe base64. The file
(`USAGE_INGEST_KEYS_FILE`) keeps the id, the SHA-256 of the whole key and its projects,
never the key: whoever reads the file cannot write events.

Why SHA-256 and not bcrypt/scrypt/argon2: those are slow on purpose to make guessing a
*human* password expensive. A 256-bit random secret cannot be guessed at any speed, so
a slow hash would add nothing but milliseconds to every request. The comparison of hashes
is constant-time (`hmac.compare_digest`), so timing does not reveal a near miss.

Pure except `KeyFile`, which reads and writes the file (atomically, mode 0600) and
reloads it when it changes, so a revoked key stops working on a running server at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stream_app.errors import ConfigurationError, PipelineError

KEY_PREFIX = "upk_"
SECRET_BYTES = 32
_KEY_PATTERN = re.compile(r"^upk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
FILE_VERSION = 1


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key as the file holds it: no secret, only its hash."""

    key_id: str
    sha256: str = field(repr=False)
    projects: tuple[str, ...]
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "sha256": self.sha256,
            "projects": list(self.projects),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: the only moment its full text exists."""

    key: str = field(repr=False)
    stored: StoredKey


def key_hash(key: str) -> str:
    """The hex SHA-256 of a key's text (see the module docstring for why SHA-256 suffices)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key(projects: list[str], *, now: datetime, existing_ids: set[str]) -> NewKey:
    """A fresh random key for `projects` (from the OS's CSPRNG)."""
    cleaned = tuple(dict.fromkeys(project.strip() for project in projects))
    if not cleaned or any(not project for project in cleaned):
        raise PipelineError("a key needs at least one --project, none of them empty")
    while True:
        key_id = secrets.token_hex(4)
        if key_id not in existing_ids:
            break
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    stored = StoredKey(key_id, key_hash(key), cleaned, now.astimezone(timezone.utc).isoformat(timespec="seconds"))
    return NewKey(key, stored)


def authenticate(presented: str | None, keys: dict[str, StoredKey]) -> StoredKey | None:
    """The active stored key matching an `Authorization: Bearer <key>` header, or None."""
    if not presented:
        return None
    scheme, _, credential = presented.partition(" ")
    if scheme.lower() != "bearer":
        return None
    match = _KEY_PATTERN.match(credential.strip())
    if match is None:
        return None
    stored = keys.get(match.group(1))
    if stored is None or not stored.active:
        return None
    if not hmac.compare_digest(key_hash(match.group(0)), stored.sha256):
        return None
    return stored


def parse_key_file(text: str, origin: str) -> dict[str, StoredKey]:
    """The keys of a file's JSON text, by id (ConfigurationError naming the file if unreadable)."""
    try:
        raw = json.loads(text)
        keys = [
            StoredKey(
                key_id=str(entry["id"]),
                sha256=str(entry["sha256"]),
                projects=tuple(str(p) for p in entry["projects"]),
                created_at=str(entry["created_at"]),
                revoked_at=entry.get("revoked_at"),
            )
            for entry in raw["keys"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"USAGE_INGEST_KEYS_FILE={origin} is not a key file ({type(exc).__name__}: {exc}); "
            "restore it, or move it away and create keys again with `usage-pipeline keys create`"
        ) from None
    return {key.key_id: key for key in keys}


def render_key_file(keys: dict[str, StoredKey]) -> str:
    """The JSON text of a key file."""
    return json.dumps({"version": FILE_VERSION, "keys": [key.as_dict() for key in keys.values()]}, indent=2) + "\n"


class KeyFile:
    """The key file on disk: read (re-read when it changed), and written atomically with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None
        self._keys: dict[str, StoredKey] = {}

    def keys(self) -> dict[str, StoredKey]:
        """The current keys; a missing file means no keys (every request is refused)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        signature = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if signature != self._seen:
                self._keys = parse_key_file(self.path.read_text(encoding="utf-8"), str(self.path))
                self._seen = signature
            return self._keys

    def create(self, projects: list[str], *, now: datetime) -> NewKey:
        """Add a new key for `projects`; returns it (its text is shown once and never stored)."""
        keys = dict(self.keys())
        made = new_key(projects, now=now, existing_ids=set(keys))
        keys[made.stored.key_id] = made.stored
        self._write(keys)
        return made

    def revoke(self, key_id: str, *, now: datetime) -> StoredKey:
        """Mark a key revoked (kept in the file, so `keys list` still shows what it was)."""
        keys = dict(self.keys())
        stored = keys.get(key_id)
        if stored is None:
            raise PipelineError(f"no key {key_id!r} in {self.path}; `usage-pipeline keys list` shows the ids")
        if stored.active:
            stored = StoredKey(
                stored.key_id, stored.sha256, stored.projects, stored.created_at,
                now.astimezone(timezone.utc).isoformat(timespec="seconds"),
            )
            keys[key_id] = stored
            self._write(keys)
        return stored

    def _write(self, keys: dict[str, StoredKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(render_key_file(keys))
        os.replace(temporary, self.path)
