"""Chunks close by messages or bytes, whichever first; the consumer's prefetch follows the byte budget."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream_app.core.chunk_limits import (
    MAX_PARTITION_FETCH_BYTES,
    MIN_PARTITION_FETCH_BYTES,
    ChunkLimits,
    consumer_buffer,
    held_bytes_bound,
    identity_groups,
)
from stream_app.core.decode import MAX_MESSAGE_BYTES

MiB = 1024 * 1024


def chunked(limits: ChunkLimits, sizes: list[int]) -> list[list[int]]:
    """Message sizes cut into chunks the way the worker's take loop applies the rule."""
    chunks: list[list[int]] = []
    current: list[int] = []
    for size in sizes:
        if limits.closes_before(len(current), sum(current), size):
            chunks.append(current)
            current = []
        current.append(size)
        if limits.is_full(len(current), sum(current)):
            chunks.append(current)
            current = []
    if current:
        chunks.append(current)
    return chunks


def test_count_closes_a_chunk_of_small_messages():
    assert chunked(ChunkLimits(3, MiB), [10] * 7) == [[10, 10, 10], [10, 10, 10], [10]]


def test_bytes_close_a_chunk_of_large_messages_before_the_count():
    limits = ChunkLimits(50, 1000)

    assert chunked(limits, [400, 400, 400, 400]) == [[400, 400], [400, 400]]


def test_a_message_that_would_overflow_the_chunk_starts_the_next():
    assert ChunkLimits(50, 1000).closes_before(2, 800, 300)
    assert not ChunkLimits(50, 1000).closes_before(2, 700, 300)


def test_a_chunk_exactly_at_the_byte_limit_closes_at_once():
    limits = ChunkLimits(50, 1000)

    assert limits.is_full(2, 1000)
    assert chunked(limits, [500, 500, 1]) == [[500, 500], [1]]


def test_a_message_larger_than_the_byte_limit_is_a_chunk_of_its_own():
    limits = ChunkLimits(50, 1000)

    assert not limits.closes_before(0, 0, 5000)
    assert chunked(limits, [10, 5000, 10]) == [[10], [5000], [10]]


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        ChunkLimits(0, 1000)
    with pytest.raises(ValueError):
        ChunkLimits(10, 0)


@given(
    max_messages=st.integers(1, 20),
    max_bytes=st.integers(1, 5000),
    sizes=st.lists(st.integers(0, 8000), max_size=60),
)
def test_every_message_lands_once_in_order_and_no_chunk_breaks_a_limit_it_could_keep(max_messages, max_bytes, sizes):
    limits = ChunkLimits(max_messages, max_bytes)

    chunks = chunked(limits, sizes)

    assert [size for chunk in chunks for size in chunk] == sizes
    for chunk in chunks:
        assert 1 <= len(chunk) <= max_messages
        assert sum(chunk) <= max_bytes or len(chunk) == 1


def test_default_budget_queues_at_most_one_chunk_of_the_largest_messages():
    buffer = consumer_buffer(ChunkLimits(50, 16 * MiB), partitions=4)

    assert buffer.stream_messages == 16 * MiB // MAX_MESSAGE_BYTES
    assert buffer.partition_fetch_bytes == MAX_PARTITION_FETCH_BYTES


def test_queue_is_never_deeper_than_two_chunks_of_messages_nor_empty():
    assert consumer_buffer(ChunkLimits(1, 1024 * MiB), partitions=4).stream_messages == 2
    assert consumer_buffer(ChunkLimits(50, 64 * 1024), partitions=4).stream_messages == 1


def test_many_partitions_share_the_byte_budget_down_to_a_floor():
    assert consumer_buffer(ChunkLimits(50, 16 * MiB), partitions=64).partition_fetch_bytes == 256 * 1024
    assert consumer_buffer(ChunkLimits(50, 16 * MiB), partitions=1024).partition_fetch_bytes == MIN_PARTITION_FETCH_BYTES


def test_held_bytes_do_not_depend_on_the_backlog_and_grow_with_the_budget():
    small = ChunkLimits(50, 16 * MiB)
    large = ChunkLimits(50, 64 * MiB)

    bound_small = held_bytes_bound(small, consumer_buffer(small, 4), 4)
    bound_large = held_bytes_bound(large, consumer_buffer(large, 4), 4)

    assert bound_small == 2 * 16 * MiB + 4 * MAX_MESSAGE_BYTES + 2 * 4 * MAX_MESSAGE_BYTES
    assert bound_small < bound_large


@given(
    st.lists(st.sets(st.integers(0, 40), max_size=12), max_size=30),
    st.integers(1, 25),
)
def test_identity_groups_cut_a_chunk_into_consecutive_runs_within_the_limit(per_message, limit):
    groups = identity_groups(per_message, limit)

    # Every message once, in order, never split.
    assert [i for g in groups for i in g] == list(range(len(per_message)))
    assert all(len(g) > 0 for g in groups)
    for g in groups:
        together = set().union(*(per_message[i] for i in g))
        # Within the limit, unless one message alone brings more (and the rest nothing new).
        assert len(together) <= limit or any(per_message[i] == together for i in g)
    # Greedy: a run closes only because the next message would take it past the limit.
    for g, after in zip(groups, groups[1:]):
        together = set().union(*(per_message[i] for i in g), per_message[after[0]])
        assert len(together) > limit


def test_identity_groups_keep_a_chunk_whole_when_it_fits():
    assert identity_groups([{1, 2}, {2, 3}, {3}], 3) == [range(0, 3)]
    assert identity_groups([{1, 2}, {2, 3}, {4}], 3) == [range(0, 2), range(2, 3)]
    assert identity_groups([], 3) == []
