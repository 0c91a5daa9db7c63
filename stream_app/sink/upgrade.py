"""Upgrade a first-release store in place to the per-message window layout (migration 3).

The first release kept `usage_events` versioned by a wall clock and recomputed
`usage_windows` from `usage_events FINAL`. This step, run once by whichever process
opens the store first (`usage-pipeline worker --validate-only` runs it on purpose):

1. renames the old events table to `usage_events_release1` and drops the old windows
   (derived data, rebuilt below);
2. creates the new tables;
3. copies the billed events (`FINAL`: one per key, exactly what was billed) with
   fingerprint 0 ("unknown": a later copy is compared field by field instead) and
   price generation 0;
4. builds every message's tool rows from them in SQL (the window cells follow in
   migration 4, from the same events);
5. drops the old table once the new one holds the same number of events.

Every step can run again after a crash at any point: renames and drops check first,
copies land on replacing keys, and the windows are rebuilt under the same keys.
"""

from __future__ import annotations

import logging
from typing import Any

from stream_app.core.rows import EVENT_COLUMNS
from stream_app.errors import SinkError
from stream_app.sink.message_windows import message_tool_windows_insert_sql
from stream_app.sink.schema import (
    events_table_sql,
    quote_identifier,
    quote_string,
    store_info_table_sql,
    tool_windows_table_sql,
)

log = logging.getLogger(__name__)

OLD_EVENTS = "usage_events_release1"
_NEW_ONLY_COLUMNS = {"batch_index": "-1", "fingerprint": "0", "price_generation": "0"}


def upgrade_to_message_windows(client: Any, database: str, window_seconds: int) -> None:
    """Bring `database` to the current layout; a no-op on a store created by it."""
    db = quote_identifier(database)
    if _has_table(client, database, "usage_events") and not _has_column(client, database, "usage_events", "fingerprint"):
        if _has_table(client, database, OLD_EVENTS):
            raise SinkError(
                f"both usage_events (first-release layout) and {OLD_EVENTS} exist in {database}; "
                f"move one aside by hand before upgrading"
            )
        client.command(f"RENAME TABLE {db}.usage_events TO {db}.{OLD_EVENTS}")
    if _has_table(client, database, "usage_windows") and not _has_column(client, database, "usage_windows", "src_offset"):
        sizes = [r[0] for r in client.query(f"SELECT DISTINCT window_seconds FROM {db}.usage_windows LIMIT 2").result_rows]
        if sizes and sizes != [window_seconds]:
            raise SinkError(
                f"the store's windows are {sizes[0]} s long but USAGE_WINDOW_SECONDS={window_seconds}; "
                f"set USAGE_WINDOW_SECONDS={sizes[0]} to upgrade it"
            )
        client.command(f"DROP TABLE {db}.usage_windows")
    for sql in (events_table_sql, tool_windows_table_sql, store_info_table_sql):
        client.command(sql(database))
    if not _has_table(client, database, OLD_EVENTS):
        return
    old_count = _count(client, f"SELECT count() FROM {db}.{OLD_EVENTS} FINAL")
    if old_count:
        log.warning("upgrading the store: copying %d billed events of the first release into the new layout", old_count)
    columns = ", ".join(EVENT_COLUMNS)
    select = ", ".join(_NEW_ONLY_COLUMNS.get(name, name) for name in EVENT_COLUMNS)
    client.command(f"INSERT INTO {db}.usage_events ({columns}) SELECT {select} FROM {db}.{OLD_EVENTS} FINAL")
    client.command(message_tool_windows_insert_sql(database, "", window_seconds=window_seconds))
    new_count = _count(client, f"SELECT count() FROM {db}.usage_events FINAL")
    if new_count != old_count:
        raise SinkError(f"upgrade copied {new_count} of {old_count} events; {OLD_EVENTS} is kept, run again")
    client.command(f"DROP TABLE IF EXISTS {db}.{OLD_EVENTS}")
    if old_count:
        log.warning("store upgraded: %d events copied, tool windows rebuilt per source message", new_count)


def _has_table(client: Any, database: str, table: str) -> bool:
    sql = (
        f"SELECT count() FROM system.tables WHERE database = {quote_string(database)} "
        f"AND name = {quote_string(table)}"
    )
    return _count(client, sql) > 0


def _has_column(client: Any, database: str, table: str, column: str) -> bool:
    sql = (
        f"SELECT count() FROM system.columns WHERE database = {quote_string(database)} "
        f"AND table = {quote_string(table)} AND name = {quote_string(column)}"
    )
    return _count(client, sql) > 0


def _count(client: Any, sql: str) -> int:
    return int(client.query(sql).result_rows[0][0])
