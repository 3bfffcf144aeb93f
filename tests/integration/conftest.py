"""Fixtures several integration modules share."""

from collections.abc import AsyncIterator

import pytest

from services.account_manager.bootstrap import build
from services.account_manager.settings import AccountManagerSettings
from services.order_intake.bootstrap import build as build_order_intake
from services.order_intake.settings import OrderIntakeSettings
from shared.worker import Worker
from tests.conftest import Stack


@pytest.fixture
async def account_manager(stack: Stack) -> AsyncIterator[Worker]:
    """account_manager running in this process, on the test's stack."""
    running = build(stack.settings(AccountManagerSettings))
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def order_intake(stack: Stack) -> AsyncIterator[Worker]:
    """order_intake running in this process, on the test's stack."""
    running = build_order_intake(stack.settings(OrderIntakeSettings))
    await running.start()
    yield running
    await running.stop()
