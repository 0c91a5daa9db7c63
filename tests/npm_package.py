"""The TypeScript package under producers/typescript, built the way its users build it.

`ensure_built()` runs `npm ci` when node_modules is missing, then `tsc` for the package
and its tests; tests that need Node skip with the reason when Node 20+ or npm is absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "producers" / "typescript"


def require_node() -> str:
    """The `node` executable (20+), or skip the test naming what is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the TypeScript producer (scripts/setup.sh installs them)")
    major = subprocess.run([node, "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True).stdout
    if int(major.strip() or 0) < 20:
        pytest.skip(f"Node 20+ is needed for the TypeScript producer, found {major.strip()}")
    return node


def npm(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`npm ARGS` in the package directory; output captured, shown by the caller on failure."""
    return subprocess.run(
        ["npm", *args], cwd=PACKAGE, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "npm_config_fund": "false", "npm_config_audit": "false", "npm_config_update_notifier": "false"},
    )


def ensure_installed() -> Path:
    """`npm ci` unless node_modules is there (scripts/setup.sh normally did it); the package dir."""
    require_node()
    if not (PACKAGE / "node_modules" / ".package-lock.json").exists():
        installed = npm("ci")
        assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}\n{installed.stderr}"
    return PACKAGE


def ensure_built() -> Path:
    """Install (if needed) and compile the package and its tests; returns the package dir."""
    ensure_installed()
    for script in ("build", "build:test"):
        built = npm("run", script)
        assert built.returncode == 0, f"npm run {script} failed:\n{built.stdout}\n{built.stderr}"
    return PACKAGE
