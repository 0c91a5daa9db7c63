"""Ingest parity: the hostile corpus and fuzzing against the ingest body check.

Ingest runs the worker's decode, so every message the worker would dead-letter is a 4xx
here that names the problem, never an exception (a 5xx) and never a silently changed
value; what the worker accepts, ingest accepts unchanged.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.core.decode import RejectReason
from stream_app.ingest.validation import IngestRejection, parse_ingest_body
from tests.factories import make_event_dict
from tests.hostile_corpus import build_corpus

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
SKEW = timedelta(seconds=300)
CORPUS = build_corpus(NOW)


def _nest(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value


def judge(body: bytes, **kw: Any) -> list | IngestRejection:
    return parse_ingest_body(body, now=NOW, max_future_skew=SKEW, **kw)


def event_body(**overrides: Any) -> dict[str, Any]:
    return make_event_dict(timestamp=NOW - timedelta(seconds=5), **overrides)


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_every_corpus_message_is_judged_by_ingest_as_by_the_worker(case) -> None:
    # A Kafka message key has no HTTP counterpart: the key mismatch is the worker's only own rule.
    reasons = {reason for reason in case.reasons if reason != RejectReason.PROJECT_KEY_MISMATCH}

    outcome = judge(case.value or b"")

    if not reasons:
        # Every event arrives, the worker's key-mismatched ones included.
        assert isinstance(outcome, list) and len(outcome) == len(case.good_event_ids) + len(case.letters)
        return
    assert isinstance(outcome, IngestRejection), case.name
    assert 400 <= outcome.status < 500
    answer = outcome.body()
    named = answer.get("reason") or {problem["message"] for problem in answer.get("problems", [])}
    assert named and answer["error"], answer


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        (json.dumps(event_body()).replace('"region"', '"big":1e400,"region"').encode(), 422, "context.big"),
        (json.dumps(event_body(usage={"input_tokens": 10, "output_tokens": 2})).replace('"output_tokens": 2', '"output_tokens": 1e400').encode(), 422, "usage.output_tokens"),
        (json.dumps(event_body()).replace('"eu-west-1"', '"\\ud800"').encode(), 422, "surrogate"),
        (json.dumps(event_body(context={"deep": _nest(200)})).encode(), 422, "nested"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (json.dumps(event_body(context={"prompt": "tell me a secret"})).encode(), 422, "context.prompt"),
    ],
    ids=["1e400_in_context", "1e400_in_tokens", "lone_surrogate", "deep_context", "deep_body", "prompt_text"],
)
def test_values_json_lets_through_are_refused_not_changed(body: bytes, status: int, named: str) -> None:
    outcome = judge(body)

    assert isinstance(outcome, IngestRejection) and outcome.status == status
    assert named in json.dumps(outcome.body()), outcome.body()


def test_the_prompt_text_answer_does_not_echo_it_and_the_deny_list_is_a_setting() -> None:
    body = json.dumps(event_body(context={"messages": [{"content": "SECRET-PROMPT"}]})).encode()

    refused = judge(body)
    allowed = judge(body, denied_context_keys=frozenset())

    assert refused.reason == "prompt_text_in_context" and "SECRET-PROMPT" not in json.dumps(refused.body())
    assert len(allowed) == 1


def test_a_project_the_key_may_not_write_is_a_403_before_any_validation() -> None:
    body = json.dumps([event_body(project_id="proj-mine"), {**event_body(project_id="proj-theirs"), "usage": "bad"}]).encode()

    outcome = judge(body, allowed_projects=frozenset({"proj-mine"}))

    assert outcome.status == 403 and "'proj-theirs'" in outcome.error and "proj-mine" not in outcome.error
    assert len(judge(json.dumps(event_body(project_id="proj-mine")).encode(), allowed_projects=frozenset({"proj-mine"}))) == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000) | json_values.map(lambda v: json.dumps(v).encode()))
def test_fuzzed_bodies_are_a_4xx_or_valid_events_never_an_exception(body: bytes) -> None:
    outcome = judge(body)

    assert isinstance(outcome, list) or 400 <= outcome.status < 500


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.sampled_from(["context", "provider_metadata", "usage", "tool_calls", "model", "timestamp"]))
def test_fuzzed_fields_of_a_valid_event_never_raise(value: Any, field: str) -> None:
    event = event_body()
    event[field] = value

    outcome = judge(json.dumps(event).encode())

    assert isinstance(outcome, list) or 400 <= outcome.status < 500
    if isinstance(outcome, list):  # accepted: exactly as sent, nothing silently changed
        assert json.loads(outcome[0].model_dump_json())[field] == value or field in ("usage", "tool_calls", "timestamp", "model")

