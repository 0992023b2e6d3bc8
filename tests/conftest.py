"""Shared fixtures. Tests needing an outside resource skip locally and fail under CI=true."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip with ``reason`` when ``condition`` is false, but fail under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


def peer_bin(name: str) -> Path:
    """Path of a reference peer binary (prometheus, promtool, ...) or skip/fail."""
    candidates = []
    if os.environ.get("OMTSDB_PEER_BIN"):
        candidates.append(Path(os.environ["OMTSDB_PEER_BIN"]) / name)
    candidates.append(Path("/opt/prom3/usr/bin") / name)
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    require(False, f"{name} not installed (run ../shared/peer/install-prometheus.sh)")
    raise AssertionError("unreachable")


@pytest.fixture
def shared_dir() -> Path:
    require(SHARED.is_dir(), f"{SHARED} is absent")
    return SHARED
