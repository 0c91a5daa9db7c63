"""When a chunk of Kafka messages closes, and how much the consumer may hold ahead of it.

A message holds one event or up to ~1,000 (up to `MAX_MESSAGE_BYTES`), so a count of
messages says little about memory: 50 messages can be 30 KB or 200 MB. A chunk therefore
closes on whichever comes first, a number of messages or a number of bytes, and what the
consumer prefetches is sized from the same byte budget. Pure arithmetic; the worker
(`stream_app/worker/take.py`, `stream_app/worker/app.py`) applies it.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from dataclasses import dataclass

from stream_app.core.decode import MAX_MESSAGE_BYTES

# Per-partition fetch, at most: one largest message's worth. With aiokafka's default (1 MiB,
# a message or two of ~600 KB) the consumer refilled a chunk at ~7 MB/s while the worker was
# busy writing the one before (each fetch round trip waits for the GIL), and the worker then
# waited ~15% of a backlog's drain for messages; at 4 MiB chunks arrive full. What a worker
# may hold is unchanged: `held_bytes_bound` already counts a fetch as the largest message.
MAX_PARTITION_FETCH_BYTES = MAX_MESSAGE_BYTES
# Below this a fetch returns too few messages per round trip to keep the worker busy.
MIN_PARTITION_FETCH_BYTES = 64 * 1024


@dataclass(frozen=True)
class ChunkLimits:
    """A chunk holds at most `max_messages` messages and `max_bytes` bytes of them.

    One message larger than `max_bytes` is a chunk of its own: every message must
    be processed, and splitting one would split an event batch.
    """

    max_messages: int
    max_bytes: int

    def __post_init__(self) -> None:
        if self.max_messages < 1 or self.max_bytes < 1:
            raise ValueError(f"chunk limits must be positive, got {self.max_messages} messages, {self.max_bytes} bytes")

    def closes_before(self, messages: int, held_bytes: int, incoming_bytes: int) -> bool:
        """Whether a chunk of `messages` holding `held_bytes` must close before taking the next message.

        It must when the message would take it past either limit; an empty chunk
        always takes the message, so progress never waits on a message's size.
        """
        if messages == 0:
            return False
        return messages + 1 > self.max_messages or held_bytes + incoming_bytes > self.max_bytes

    def is_full(self, messages: int, held_bytes: int) -> bool:
        """Whether a chunk has reached a limit and closes now, without waiting for the next message."""
        return messages >= self.max_messages or held_bytes >= self.max_bytes


@dataclass(frozen=True)
class ConsumerBuffer:
    """What the Kafka consumer may hold ahead of the chunk being filled.

    `stream_messages` bounds the queue between the consumer and the chunk (Faust's
    `stream_buffer_maxsize`): at most one chunk's bytes even if every message were
    the largest the worker reads. `partition_fetch_bytes` bounds each partition's
    prefetch (Faust's `consumer_max_fetch_size`, aiokafka's `max_partition_fetch_bytes`):
    all partitions together at most one chunk's bytes, within sane per-fetch bounds.
    The broker still returns one record batch larger than that, so a big message
    never stalls its partition.
    """

    stream_messages: int
    partition_fetch_bytes: int


def consumer_buffer(limits: ChunkLimits, partitions: int, max_message_bytes: int = MAX_MESSAGE_BYTES) -> ConsumerBuffer:
    """The consumer's prefetch for these chunk limits and `partitions` assigned partitions (at most)."""
    stream_messages = max(1, min(2 * limits.max_messages, limits.max_bytes // max_message_bytes))
    per_partition = limits.max_bytes // max(1, partitions)
    fetch = max(MIN_PARTITION_FETCH_BYTES, min(MAX_PARTITION_FETCH_BYTES, per_partition))
    return ConsumerBuffer(stream_messages=stream_messages, partition_fetch_bytes=fetch)


def held_bytes_bound(limits: ChunkLimits, buffer: ConsumerBuffer, partitions: int, max_message_bytes: int = MAX_MESSAGE_BYTES) -> int:
    """The most message bytes one worker holds at once, whatever the backlog or a ClickHouse outage lasts.

    The chunk being written, the next one filling (each at most `max_bytes`, or one
    larger message), the queue, and per partition one fetch in the consumer plus the
    one being handed over (each at most the fetch size, or one larger record batch).
    """
    chunk = max(limits.max_bytes, max_message_bytes)
    queue = buffer.stream_messages * max_message_bytes
    fetches = 2 * max(1, partitions) * max(buffer.partition_fetch_bytes, max_message_bytes)
    return 2 * chunk + queue + fetches


# A write holds at most this many distinct (project, agent, session) identities.
# Each brings window cells of its own (agent, session and model cells at three levels, and
# their per-message contributions, stored rows and look-up keys): a chunk of 25,000 events
# from 25,000 sessions would otherwise hold 100k+ cells at once, and the worker's memory
# would follow the number of sessions instead of the chunk's bytes. Traffic from a few
# thousand sessions fits one write per chunk.
# 2,500 rather than 5,000 since chunk rows go to ClickHouse as Arrow tables: with 5,000 the
# peak RSS at 100k sessions was 1.15x that at 1k (worker_memory.py), with 2,500 1.08x.
MAX_IDENTITIES_PER_WRITE = 2_500


def identity_groups(per_message: Sequence[Collection[Hashable]], limit: int = MAX_IDENTITIES_PER_WRITE) -> list[range]:
    """Runs of consecutive messages whose identities together stay within `limit`.

    A chunk is written run by run, in order: as if it had been cut into smaller chunks,
    which counting does not see (a cell's coverage makes any cut exact). A message whose
    identities alone pass the limit is a run of its own: a message is never split.
    """
    groups: list[range] = []
    start = 0
    seen: set[Hashable] = set()
    for index, identities in enumerate(per_message):
        fresh = [i for i in identities if i not in seen]
        if seen and len(seen) + len(fresh) > limit:
            groups.append(range(start, index))
            start, seen = index, set()
            fresh = list(identities)
        seen.update(fresh)
    if start < len(per_message):
        groups.append(range(start, len(per_message)))
    return groups
