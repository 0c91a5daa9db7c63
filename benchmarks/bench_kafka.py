"""The Kafka broker a benchmark uses: the configured one, or a local one it starts and stops."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


class BenchmarkKafka:
    """`up()` returns a bootstrap address (KAFKA_BOOTSTRAP_SERVERS, or a local broker under
    `work`); `down()` stops the local broker if this object started one."""

    def __init__(self, settings: Any, work: Path) -> None:
        self.settings = settings
        self.work = work
        self._broker: Any = None

    def up(self) -> str:
        if self.settings.kafka_bootstrap_servers:
            return self.settings.kafka_bootstrap_servers
        from stream_app.broker.local import LocalKafkaBroker

        self._broker = LocalKafkaBroker(self.work / "kafka", progress=lambda m: print(f"  kafka: {m}", file=sys.stderr))
        return self._broker.up()

    def down(self) -> None:
        if self._broker is not None:
            self._broker.down()
            self._broker = None
