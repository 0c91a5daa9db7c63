"""The dead-letter record: the original bytes, the reason, and where they came from (pure)."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from stream_app.core.decode import Rejection

DEAD_LETTER_VERSION = 1


def dead_letter_record(rejection: Rejection, *, rejected_at: datetime, consumer_group: str) -> tuple[bytes, bytes]:
    """The (key, value) of a dead letter. The key is the original key, so replay keeps partitioning."""
    raw = rejection.raw
    try:
        raw_text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        raw_text = None
    value = {
        "dead_letter_version": DEAD_LETTER_VERSION,
        "reason": rejection.reason,
        "detail": rejection.detail,
        "event_id": rejection.event_id,
        "project_id": rejection.project_id,
        "source": {
            "topic": rejection.origin.topic,
            "partition": rejection.origin.partition,
            "offset": rejection.origin.offset,
            "batch_index": rejection.index,
            "key": rejection.origin.key.decode("utf-8", "replace") if rejection.origin.key else None,
        },
        "raw_base64": base64.b64encode(raw).decode("ascii"),
        "raw_text": raw_text,
        "rejected_at": rejected_at.isoformat(),
        "consumer_group": consumer_group,
    }
    key = rejection.origin.key or (rejection.project_id or "").encode()
    return key, json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
