"""Fixtures for the dev tenant tests: a running emulator with two mailboxes."""

from collections.abc import Iterator

import pytest
from devtenant_harness import SENDER, SHARED

from mailplane.devtenant.app import DevTenant


@pytest.fixture
def tenant() -> Iterator[DevTenant]:
    with DevTenant(with_exchange=False) as running:
        running.state.add_mailbox(SHARED, kind="shared", display_name="Support")
        running.state.add_mailbox(SENDER, display_name="Alerts")
        yield running
