"""The stream worker: validate, price and window usage events, write them to ClickHouse.

`stream_app.core` is pure (no faust, kafka or clickhouse imports); `stream_app.sink`,
`stream_app.worker` and `stream_app.broker` are the I/O shell around it.
"""
