"""The Kafka broker's runtime: Java 17+ and the broker's jars from Maven Central, cached once.

The jars (`kafka-runtime.pom.xml` beside this module) are resolved with Maven into a cache
shared by every broker home and every test session.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from stream_app.broker.processes import file_lock as _file_lock
from stream_app.broker.processes import tail
from stream_app.errors import BrokerError

KAFKA_VERSION = "4.1.1"
MIN_JAVA_MAJOR = 17
POM_RESOURCE = "kafka-runtime.pom.xml"
INSTALL_HINT = "install with: apt-get install -y openjdk-17-jre-headless maven"
LOG_TAIL_LINES = 30


def parse_java_major(version_output: str) -> int | None:
    """The major version in `java -version` output ("1.8.0_392" -> 8, "17.0.15" -> 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major



def default_jar_cache() -> Path:
    """Where the broker's jars are kept: shared by every home and every test session."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "usage-pipeline" / f"kafka-{KAFKA_VERSION}"



class KafkaRuntime:
    """Java and the broker's jars: found, checked, fetched once."""

    def __init__(self, jar_cache: Path, progress: Callable[[str], None]) -> None:
        self.jar_cache = jar_cache
        self.progress = progress

    @property
    def libs_dir(self) -> Path:
        return self.jar_cache / "libs"

    def ensure_jars(self) -> Path:
        """Make sure Java 17+ is there and the broker's jars are cached; return their dir.

        The first call resolves them with Maven from Maven Central (~45 MB); later calls,
        from any home or process, find them in the cache.
        """
        self.java()
        return self._cached_jars()

    def _cached_jars(self) -> Path:
        if self._jars_present():
            return self.libs_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                f"Maven (`mvn`) is needed once to fetch the Kafka jars and is not on PATH; {INSTALL_HINT}"
            )
        self.jar_cache.mkdir(parents=True, exist_ok=True)
        # Two test sessions may start at once: one downloads, the other waits for it.
        with _file_lock(self.jar_cache / ".lock"):
            if not self._jars_present():
                self._fetch_jars(mvn)
        return self.libs_dir

    def _jars_present(self) -> bool:
        return (self.libs_dir / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()

    def _fetch_jars(self, mvn: str) -> None:
        pom = self.jar_cache / POM_RESOURCE
        pom.write_bytes(importlib.resources.files("stream_app.broker").joinpath(POM_RESOURCE).read_bytes())
        # Download into a side directory and rename it at the end, so an interrupted
        # download never looks like a complete set of jars.
        partial = self.jar_cache / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        self.progress(f"fetching Kafka {KAFKA_VERSION} jars with Maven into {self.libs_dir} (once) ...")
        started = time.monotonic()
        command = [
            mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}", "-DincludeScope=runtime",
        ]
        try:
            result = subprocess.run(
                command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"Maven did not finish fetching the Kafka jars within {exc.timeout:.0f} s") from None
        if result.returncode != 0:
            output = tail((result.stdout or "") + (result.stderr or ""), LOG_TAIL_LINES)
            raise BrokerError(
                f"Maven could not fetch the Kafka {KAFKA_VERSION} jars (exit {result.returncode}); "
                f"is Maven Central reachable? `{' '.join(command)}` said:\n{output}"
            )
        partial.rename(self.libs_dir)
        self.progress(f"fetched the Kafka jars in {time.monotonic() - started:.1f} s")

    def java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise BrokerError(
                f"Java {MIN_JAVA_MAJOR}+ is needed to run the Kafka broker and `java` is not on PATH; {INSTALL_HINT}"
            )
        result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
        major = parse_java_major(result.stderr + result.stdout)
        if major is None or major < MIN_JAVA_MAJOR:
            found = (result.stderr or result.stdout).strip().splitlines()[:1]
            raise BrokerError(
                f"Kafka {KAFKA_VERSION} needs Java {MIN_JAVA_MAJOR}+, `{java}` is {found or 'unknown'}; {INSTALL_HINT}"
            )
        return java
