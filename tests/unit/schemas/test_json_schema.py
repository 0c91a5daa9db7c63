"""The shipped JSON Schema: generated from the models, and agreeing with them."""

from __future__ import annotations

import json

import pytest

from schemas import JSON_SCHEMA_PATH, UsageTrackingEvent
from schemas.json_schema import event_json_schema, render_json_schema
from tests.factories import make_event_dict


def test_shipped_schema_file_matches_the_models():
    shipped = JSON_SCHEMA_PATH.read_text(encoding="utf-8")

    assert shipped == render_json_schema(), (
        f"{JSON_SCHEMA_PATH.name} is out of date with schemas/event.py: run `python -m schemas` "
        "and commit the result"
    )


def test_schema_file_is_versioned_and_shipped_beside_the_models():
    assert JSON_SCHEMA_PATH.name == "usage_tracking_event.v1.schema.json"
    assert JSON_SCHEMA_PATH.parent.name == "schemas"


def test_rendering_is_stable_text():
    text = render_json_schema()

    assert text.endswith("}\n")
    assert text == render_json_schema()
    assert json.loads(text) == event_json_schema()


def test_schema_identifies_itself():
    schema = event_json_schema()

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "urn:llm-usage-pipeline:usage-tracking-event:v1"
    assert schema["properties"]["schema_version"]["const"] == 1


def test_schema_forbids_unknown_fields_at_every_level():
    schema = event_json_schema()

    assert schema["additionalProperties"] is False
    assert schema["$defs"]["Usage"]["additionalProperties"] is False
    assert schema["$defs"]["ToolCall"]["additionalProperties"] is False


def test_schema_requires_what_the_spec_requires():
    schema = event_json_schema()

    assert set(schema["required"]) == {
        "schema_version", "event_id", "timestamp", "source", "project_id", "agent_name",
        "method", "provider", "model", "usage",
    }
    assert set(schema["$defs"]["Usage"]["required"]) == {"input_tokens", "output_tokens"}


def test_schema_declares_money_as_a_string():
    provider_cost = event_json_schema()["properties"]["provider_cost"]

    assert {"type": "null"} in provider_cost["anyOf"]
    (string_form,) = [branch for branch in provider_cost["anyOf"] if branch.get("type") == "string"]
    assert "pattern" in string_form


def test_schema_declares_token_counts_as_non_negative_integers():
    usage = event_json_schema()["$defs"]["Usage"]["properties"]

    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
        assert usage[name]["type"] == "integer", name
        assert usage[name]["minimum"] == 0, name


# The JSON Schema cannot express the cross-field rules (cache <= input, ...), but for
# single-field rules a producer validating against it must get the consumer's verdict.
_AGREEMENT_CASES = [
    pytest.param({}, True, id="valid"),
    pytest.param({"provider_cost": "0.0123"}, True, id="decimal-string-cost"),
    pytest.param({"provider_cost": 0.0123}, False, id="float-cost"),
    pytest.param({"usage": {"input_tokens": 5.5}}, False, id="fractional-tokens"),
    pytest.param({"usage": {"input_tokens": "5"}}, False, id="string-tokens"),
    pytest.param({"usage": {"input_token": 5}}, False, id="misspelled-usage-field"),
    pytest.param({"unknown_field": 1}, False, id="unknown-field"),
    pytest.param({"method": "batch"}, False, id="bad-method"),
    pytest.param({"session_id": None}, True, id="null-session"),
    pytest.param({"schema_version": 2}, False, id="version-2"),
    pytest.param({"schema_version": True}, False, id="version-true"),
    pytest.param({"timestamp": 1795348800}, False, id="numeric-timestamp"),
    pytest.param({"provider_cost": "1_000"}, False, id="underscore-cost"),
    pytest.param({"provider_cost": "-0"}, False, id="negative-zero-cost"),
    pytest.param({"provider_cost": "7.5E-8"}, True, id="exponent-cost"),
    pytest.param({"provider_cost": " 1.5 "}, True, id="padded-cost"),
]


@pytest.mark.parametrize(("overrides", "schema_says_valid"), _AGREEMENT_CASES)
def test_json_schema_and_model_agree(overrides, schema_says_valid):
    jsonschema = pytest.importorskip("jsonschema")
    wire = make_event_dict(**overrides)
    validator = jsonschema.Draft202012Validator(event_json_schema())

    assert validator.is_valid(wire) is schema_says_valid  # the case is labelled right
    try:
        UsageTrackingEvent.model_validate_json(json.dumps(wire))
        model_says_valid = True
    except ValueError:
        model_says_valid = False
    assert model_says_valid is schema_says_valid
