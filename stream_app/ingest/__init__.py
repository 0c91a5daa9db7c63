"""HTTP ingestion for services that are not Python: `POST /v1/events` -> Kafka.

`validation` is pure (bytes in, events or field-by-field problems out); `server` is the
aiohttp shell that publishes what validates and answers 202, or 4xx naming each bad field.
"""
