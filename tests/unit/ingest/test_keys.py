"""Ingest API keys: shown once, stored as a hash, bound to projects, revocable."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stream_app.ingest.keys import KeyFile, authenticate, key_hash
from stream_app.errors import PipelineError

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def test_a_key_is_stored_only_as_its_hash_in_a_private_file(tmp_path: Path) -> None:
    key_file = KeyFile(tmp_path / "keys.json")

    made = key_file.create(["proj-a", "proj-b", "proj-a"], now=NOW)

    text = key_file.path.read_text()
    secret = made.key.split("_", 2)[2]  # `upk_<id>_<secret>`; the secret may itself hold "_"
    assert len(secret) == 43
    assert made.key not in text and secret not in text
    assert json.loads(text)["keys"][0]["sha256"] == key_hash(made.key)
    assert made.stored.projects == ("proj-a", "proj-b")
    assert stat.S_IMODE(key_file.path.stat().st_mode) == 0o600
    assert made.key not in repr(made)


def test_only_the_exact_active_key_authenticates(tmp_path: Path) -> None:
    key_file = KeyFile(tmp_path / "keys.json")
    made = key_file.create(["proj-a"], now=NOW)
    keys = key_file.keys()

    assert authenticate(f"Bearer {made.key}", keys) == made.stored
    near_miss = made.key[:-1] + ("A" if made.key[-1] != "A" else "B")
    other_id = made.key.replace(made.stored.key_id, "00000000" if made.stored.key_id != "00000000" else "11111111")
    for header in (None, "", made.key, f"Basic {made.key}", f"Bearer {near_miss}", f"Bearer {other_id}",
                   f"Bearer {made.stored.sha256}", "Bearer upk_", f"Bearer {made.key}x"):
        assert authenticate(header, keys) is None, header


def test_a_revoked_key_stops_working_without_a_restart(tmp_path: Path) -> None:
    key_file = KeyFile(tmp_path / "keys.json")
    made = key_file.create(["proj-a"], now=NOW)
    assert authenticate(f"Bearer {made.key}", key_file.keys()) is not None

    KeyFile(key_file.path).revoke(made.stored.key_id, now=NOW)  # another process: `keys revoke`

    assert authenticate(f"Bearer {made.key}", key_file.keys()) is None
    assert key_file.keys()[made.stored.key_id].revoked_at is not None
    with pytest.raises(PipelineError, match="keys list"):
        key_file.revoke("deadbeef", now=NOW)


def test_no_file_means_no_key_and_a_key_needs_a_project(tmp_path: Path) -> None:
    key_file = KeyFile(tmp_path / "missing.json")

    assert key_file.keys() == {}
    with pytest.raises(PipelineError, match="--project"):
        key_file.create([" "], now=NOW)
