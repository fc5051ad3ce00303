"""The cluster lane: a three-node RabbitMQ cluster of its own on this machine (beside the shared node, never
touching it), and a database and broker prefix of its own, all removed afterwards."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.settings import Settings
from tests.support.databases import drop_database, migrated_settings
from tests.support.rabbit import RABBITMQ_BIN, RabbitCluster
from tests.support.report import summarize


def pytest_terminal_summary(terminalreporter: Any) -> None:
    summarize(terminalreporter, "tests/cluster/")


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[RabbitCluster]:
    if not (RABBITMQ_BIN / "rabbitmq-server").exists() or shutil.which("epmd") is None:
        pytest.skip(f"no RabbitMQ server in {RABBITMQ_BIN} to start a cluster with")
    cluster = RabbitCluster()
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()


@pytest.fixture(scope="module")
async def cluster_settings(cluster: RabbitCluster) -> AsyncIterator[Settings]:
    """A migrated database, and the topology declared on the cluster (after it formed, so each quorum queue gets a
    member on every node). Every service lists the three nodes."""
    name, settings = await migrated_settings(amqp_url=",".join(cluster.urls), rate_limit_per_minute=0)
    try:
        yield settings
    finally:
        await drop_database(name)  # the queues go with the cluster
