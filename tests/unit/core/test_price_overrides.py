"""The price file: its format, every validation error (with line and fix), and effective dates."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from stream_app.core.override_schedule import OverrideSchedule
from stream_app.core.price_overrides import (
    PriceOverrides,
    load_price_overrides,
    parse_price_overrides,
)
from stream_app.errors import ConfigurationError
from stream_app.settings import load_settings

EXAMPLE = """\
# A negotiated gpt-4o price for every project, from 2026-01-01 on.
[[override]]
name = "acme-contract-gpt-4o"
provider = "openai"
model = "gpt-4o"
effective_from = 2026-01-01
input_mtok = "2.00"
cache_read_mtok = "1.00"
output_mtok = "8.00"

[[override]]
provider = "OpenAI"
model = "FT:gpt-4o-mini:acme:support-v3"
project = "acme-support"
effective_from = 2026-02-01T09:30:00+01:00
input_mtok = 3
cache_write_mtok = "0.375"
output_mtok = "12"

[[alias]]
provider = "azure"
model = "prod-gpt4o-eu"
catalog_model = "gpt-4o"
"""


def parse(text: str) -> PriceOverrides:
    return parse_price_overrides(textwrap.dedent(text), origin="prices.toml")


def problems(text: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        parse(text)
    return str(caught.value)


def test_the_documented_example_reads_as_written():
    overrides = parse(EXAMPLE)

    first, second = overrides.overrides
    assert first.name == "acme-contract-gpt-4o"
    assert first.source == "override:prices.toml#acme-contract-gpt-4o"
    assert (first.provider, first.model, first.project) == ("openai", "gpt-4o", None)
    assert first.effective_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert (first.input_mtok, first.cache_read_mtok, first.cache_write_mtok, first.output_mtok) == (
        Decimal("2.00"), Decimal("1.00"), None, Decimal("8.00"),
    )
    assert first.line == 2
    # Names default to provider/model[/project]@start; provider and model are normalized.
    assert second.name == "openai/ft:gpt-4o-mini:acme:support-v3/acme-support@2026-02-01T08:30:00Z"
    assert (second.provider, second.model, second.project) == ("openai", "ft:gpt-4o-mini:acme:support-v3", "acme-support")
    assert second.effective_from == datetime(2026, 2, 1, 8, 30, tzinfo=UTC)
    assert second.input_mtok == Decimal(3) and second.cache_write_mtok == Decimal("0.375")
    (alias,) = overrides.aliases
    assert (alias.provider, alias.model, alias.catalog_provider, alias.catalog_model) == ("azure", "prod-gpt4o-eu", "azure", "gpt-4o")
    assert alias.where == "prices.toml line 20 ([[alias]] #1)"


def test_an_empty_file_has_no_entries():
    assert parse("# nothing yet\n").empty


def test_a_float_price_is_refused_with_the_fix():
    text = problems(
        """\
        [[override]]
        provider = "openai"
        model = "gpt-4o"
        input_mtok = 2.5
        output_mtok = "10"
        """
    )

    assert "prices.toml line 4 ([[override]] #1): input_mtok = 2.5 is a float" in text
    assert 'write the price as a decimal string: input_mtok = "2.5"' in text


def test_every_problem_is_reported_at_once_with_its_line():
    text = problems(
        """\
        [[override]]
        name = "a"
        provider = "openai"
        model = "gpt-4o"
        input_mtok = "abc"
        outptu_mtok = "10"

        [[override]]
        provider = "openai"
        input_mtok = "-1"
        output_mtok = "1.1234567890123"
        effective_from = 2026-01-01T00:00:00

        [[alias]]
        provider = "azure"
        model = "x"
        """
    )

    assert "has 8 problem(s)" in text
    assert "prices.toml line 5 ([[override]] #1 'a'): input_mtok = 'abc' is not a decimal number" in text
    assert "prices.toml line 6 ([[override]] #1 'a'): unknown key 'outptu_mtok' (did you mean 'output_mtok'?)" in text
    assert "prices.toml line 1 ([[override]] #1 'a'): missing output_mtok" in text
    assert "prices.toml line 8 ([[override]] #2): missing model" in text
    assert "prices.toml line 10 ([[override]] #2): input_mtok = '-1' must be a finite price of 0 or more" in text
    assert "line 11 ([[override]] #2): output_mtok = '1.1234567890123' has more than 12 decimal places" in text
    assert "line 12 ([[override]] #2): effective_from = 2026-01-01T00:00:00 has no UTC offset; add one" in text
    assert "prices.toml line 14 ([[alias]] #1): missing catalog_model" in text


def test_toml_syntax_errors_name_the_line():
    text = problems('[[override]]\nprovider = "openai\n')

    assert "prices.toml is not valid TOML" in text
    assert "line 2" in text


def test_unknown_top_level_keys_are_refused():
    assert "unknown top-level key 'overide' (did you mean 'override'?)" in problems('[[overide]]\nprovider = "x"\n')


def test_duplicate_names_and_duplicate_entries_are_refused():
    entry = '[[override]]\nname = "{name}"\nprovider = "openai"\nmodel = "gpt-4o"\ninput_mtok = "1"\noutput_mtok = "2"\n'

    assert "name 'same' is already used by the entry at line 1" in problems(entry.format(name="same") * 2)
    text = problems(entry.format(name="one") + entry.format(name="two"))
    assert "line 7 ([[override]] #2 'two'): same provider, model, project and effective_from as the entry at line 1" in text


def test_duplicate_aliases_are_refused():
    alias = '[[alias]]\nprovider = "azure"\nmodel = "dep"\ncatalog_model = "gpt-4o"\n'

    assert "azure/dep is already aliased at line 1" in problems(alias * 2)


def test_effective_from_as_a_string_date_or_datetime():
    base = '[[override]]\nprovider = "p"\nmodel = "m"\ninput_mtok = "1"\noutput_mtok = "1"\n'

    assert parse(base + 'effective_from = "2026-05-01"\n').overrides[0].effective_from == datetime(2026, 5, 1, tzinfo=UTC)
    assert parse(base + 'effective_from = "2026-05-01T10:00:00Z"\n').overrides[0].effective_from == datetime(
        2026, 5, 1, 10, tzinfo=UTC
    )
    assert "is not a date" in problems(base + 'effective_from = "soon"\n')


def test_load_reads_a_file_and_fingerprints_it(tmp_path: Path):
    path = tmp_path / "prices.toml"
    path.write_text(EXAMPLE)

    loaded = load_price_overrides(path)

    assert loaded.origin == str(path)
    assert len(loaded.digest) == 64
    assert [o.source for o in loaded.overrides][0] == "override:prices.toml#acme-contract-gpt-4o"
    assert load_price_overrides(None) == PriceOverrides()


def test_a_missing_file_names_the_setting(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="USAGE_PRICE_OVERRIDES_FILE=.*cannot be read"):
        load_price_overrides(tmp_path / "nope.toml")


def test_the_setting(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("USAGE_PRICE_OVERRIDES_FILE", str(tmp_path / "prices.toml"))
    assert load_settings().price_overrides_file == tmp_path / "prices.toml"
    monkeypatch.setenv("USAGE_PRICE_OVERRIDES_FILE", "")
    assert load_settings().price_overrides_file is None


# --- which entry is in force ---------------------------------------------------------------------


HISTORY = """\
[[override]]
name = "always"
provider = "openai"
model = "m"
input_mtok = "1"
output_mtok = "1"

[[override]]
name = "from-march"
provider = "openai"
model = "m"
effective_from = 2026-03-01
input_mtok = "2"
output_mtok = "2"

[[override]]
name = "acme-from-june"
provider = "openai"
model = "m"
project = "acme"
effective_from = 2026-06-01
input_mtok = "3"
output_mtok = "3"
"""


@pytest.mark.parametrize(
    ("project", "at", "name"),
    [
        ("other", datetime(2026, 2, 28, 23, 59, 59, 999_999, tzinfo=UTC), "always"),
        ("other", datetime(2026, 3, 1, tzinfo=UTC), "from-march"),  # the start instant belongs to the new entry
        ("acme", datetime(2026, 5, 31, tzinfo=UTC), "from-march"),  # before its own entry, the general one applies
        ("acme", datetime(2026, 6, 1, tzinfo=UTC), "acme-from-june"),
        ("acme", datetime(2026, 6, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))), "from-march"),  # 23:00 UTC the day before
        (None, datetime(2027, 1, 1, tzinfo=UTC), "from-march"),
    ],
)
def test_the_latest_entry_at_or_before_the_event_is_in_force(project, at, name):
    schedule = OverrideSchedule(parse(HISTORY).overrides)

    assert schedule.in_force(project, at).name == name


def test_before_the_first_entry_nothing_is_in_force():
    text = HISTORY.split("[[override]]\nname = \"from-march\"")[0].replace('name = "always"', 'name = "x"\neffective_from = 2026-01-01')

    assert OverrideSchedule(parse(text).overrides).in_force("acme", datetime(2025, 12, 31, tzinfo=UTC)) is None
