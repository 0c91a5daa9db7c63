"""Instrument real provider SDK clients: each of their LLM calls becomes one usage event.

    from producers.instrument import instrument_openai, instrument_anthropic
    client = instrument_openai(openai.OpenAI())

The provider SDKs are imported only when a client is instrumented, so `producers` stays
importable without them.
"""

from __future__ import annotations

from producers.instrument._client_hooks import uninstrument_client as uninstrument
from producers.instrument.anthropic import instrument_anthropic
from producers.instrument.openai import instrument_openai

__all__ = ["instrument_anthropic", "instrument_openai", "uninstrument"]
