"""The TypeScript producer's own unit tests (node's test runner), run by the README's test command.

`npm test` builds the package and runs producers/typescript/test/*.test.ts: events built
from AI SDK mock-model calls validated against schemas/usage_tracking_event.v1.schema.json
(ajv), usage mapping for AI SDK 5 and 6, batching, UUIDv7, retry/backoff, bounded buffer.
This test fails when any of them fails, and shows their output.
"""

from __future__ import annotations

import re

from tests.npm_package import ensure_installed, npm


def test_npm_test_passes() -> None:
    ensure_installed()
    done = npm("test", timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"npm test failed:\n{output[-8000:]}"
    passed = re.search(r"^ℹ pass (\d+)", output, re.MULTILINE)
    assert passed is not None and int(passed.group(1)) > 0, f"npm test ran no test:\n{output[-4000:]}"
    assert re.search(r"^ℹ fail 0", output, re.MULTILINE), output[-4000:]
