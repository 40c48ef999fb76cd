"""Shared fixtures: paths, the example stacks, and the Pulumi mock engine."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"
EXAMPLE_STACKS = sorted((REPO_ROOT / "stacks").glob("Pulumi.example-*.yaml"))

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def shared_dir() -> Path:
    """The development-only shared/ folder; tests that need it skip on a user's machine."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent: Microsoft's source data is only available in development and CI")
    return SHARED_DIR


@pytest.fixture
def pulumi_mocks():
    """A fresh mock engine that answers like a tenant (see mailplane.plan.OfflineTenantMocks); yields the monitor."""
    import pulumi
    from pulumi.runtime import settings

    from mailplane.plan import OfflineTenantMocks, RecordingMonitor

    # set_mocks registers the stack on the current event loop; an earlier test's asyncio.run() leaves none behind.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    mocks = OfflineTenantMocks()
    monitor = RecordingMonitor(mocks)
    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(mocks, project="mailplane", stack="test", preview=False, monitor=monitor)
    pulumi.runtime.set_all_config({})
    yield monitor
    asyncio.set_event_loop(None)
    loop.close()
