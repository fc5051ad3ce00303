"""The broker from the operator's side: ``rabbitmqctl`` to find and close connections (only ours: the broker is
shared with everyone else's test runs) and passive declares to read a queue's depth and consumers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractConnection

_CONNECTION_NAME = re.compile(r'\{"connection_name","([^"]*)"\}')


@dataclass(frozen=True)
class BrokerConnection:
    pid: str
    name: str


async def rabbitmqctl(*args: str, timeout: float = 60.0) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout)
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} exited {process.returncode}: {text[-500:]}")
    return text


async def connections_of(broker_prefix: str) -> list[BrokerConnection]:
    """The broker connections our services opened for this prefix: named ``rcc-<service> <broker_prefix>``."""
    assert broker_prefix, "an empty prefix would match every deployment on this broker"
    found = []
    for line in (await rabbitmqctl("list_connections", "-q", "pid", "client_properties")).splitlines():
        pid, _, properties = line.partition("\t")
        match = _CONNECTION_NAME.search(properties)
        if match is None:
            continue
        name = match.group(1)
        service, _, prefix = name.partition(" ")
        if service.startswith("rcc-") and prefix == broker_prefix:
            found.append(BrokerConnection(pid.strip(), name))
    return found


async def close_connections_of(broker_prefix: str, reason: str) -> list[BrokerConnection]:
    """Close exactly this prefix's service connections, as an operator (or a broker restart) would."""
    closed = await connections_of(broker_prefix)
    for connection in closed:
        await rabbitmqctl("close_connection", connection.pid, reason)
    return closed


async def queue_state(connection: AbstractConnection, name: str) -> tuple[int, int] | None:
    """(ready messages, consumers) of a queue, or None when it does not exist; a passive declare on a channel of its
    own (a failed passive declare closes the channel)."""
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return None
    result = queue.declaration_result
    await channel.close()
    return result.message_count, result.consumer_count


# A RabbitMQ cluster of this test's own, beside the shared node (never touched: its own node names, ports, data
# directories, configuration and Erlang cookie), for tests/cluster.
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
CLUSTER_AMQP_PORT = 5701  # node n listens on 5700 + n (AMQP) and 25700 + n (Erlang distribution)
CLUSTER_DIST_PORT = 25701


@dataclass(frozen=True)
class ClusterNode:
    index: int
    root: Path

    @property
    def name(self) -> str:
        return f"rcc-cluster-{self.index}@localhost"

    @property
    def amqp_port(self) -> int:
        return CLUSTER_AMQP_PORT + self.index - 1

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    def environment(self) -> dict[str, str]:
        base = self.root / self.name.partition("@")[0]
        env = {key: value for key, value in os.environ.items() if not key.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.root),  # the cluster's own .erlang.cookie
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(CLUSTER_DIST_PORT + self.index - 1),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_PID_FILE=str(base / "pid"),
            RABBITMQ_CONFIG_FILE=str(self.root / "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=str(self.root / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.root / "advanced.config"),
            ERL_EPMD_ADDRESS="127.0.0.1",
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    @property
    def pid_file(self) -> Path:
        return self.root / self.name.partition("@")[0] / "pid"


class RabbitCluster:
    """Three ``rabbitmq-server`` nodes on this machine, joined with ``rabbitmqctl join_cluster``; ``stop()`` stops
    them and removes their directories."""

    def __init__(self, size: int = 3) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rcc-rabbit-cluster-"))
        self.nodes = [ClusterNode(n, self.root) for n in range(1, size + 1)]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    async def ctl(self, node: ClusterNode, *args: str, timeout: float = 120.0) -> str:
        return await _run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", node.name, *args], node.environment(), timeout=timeout
        )

    async def start(self) -> None:
        cookie = self.root / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
        (self.root / "rabbitmq.conf").write_text(
            "loopback_users.guest = true\n"
            # the shared node's disk alarm would otherwise hold publishes on a small test disk
            "disk_free_limit.absolute = 50MB\n"
        )
        (self.root / "rabbitmq-env.conf").write_text("")
        (self.root / "enabled_plugins").write_text("[].\n")
        (self.root / "advanced.config").write_text("[].\n")
        for node in self.nodes:
            await asyncio.create_subprocess_exec(
                str(RABBITMQ_BIN / "rabbitmq-server"),
                "-detached",
                env=node.environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        for node in self.nodes:
            # ``wait`` waits for the node to write its pid file and then for it to boot (await_startup gives up at
            # once on a node that has not registered yet).
            await self.ctl(node, "wait", str(node.pid_file), "--timeout", "240", timeout=260)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            await self.ctl(node, "stop_app")
            await self.ctl(node, "reset")
            await self.ctl(node, "join_cluster", first.name)
            await self.ctl(node, "start_app")
        status = await self.ctl(first, "cluster_status", "--formatter", "json")
        running = set(json.loads(status)["running_nodes"])
        assert running == {node.name for node in self.nodes}, status

    async def stop_app(self, node: ClusterNode) -> None:
        await self.ctl(node, "stop_app")

    async def start_app(self, node: ClusterNode) -> None:
        await self.ctl(node, "start_app")
        await self.ctl(node, "await_startup", "--timeout", "120", timeout=150)

    async def queue_leader(self, queue: str) -> ClusterNode:
        listed = await self.ctl(self.nodes[0], "list_queues", "name", "leader", "--formatter", "json", "-q")
        for row in json.loads(listed):
            if row["name"] == queue:
                return next(node for node in self.nodes if node.name == row["leader"])
        raise AssertionError(f"no queue {queue}: {listed[:500]}")

    async def queue_members(self, queue: str) -> set[str]:
        listed = await self.ctl(self.nodes[0], "list_queues", "name", "members", "--formatter", "json", "-q")
        for row in json.loads(listed):
            if row["name"] == queue:
                return set(row["members"])
        raise AssertionError(f"no queue {queue}")

    async def stop(self) -> None:
        pids = {node: node.pid_file.read_text().strip() for node in self.nodes if node.pid_file.exists()}
        for node in self.nodes:
            with contextlib.suppress(Exception):
                await self.ctl(node, "stop", timeout=60)
            if node in pids:  # a node that would not stop politely
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pids[node]), signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


async def _run(command: list[str], env: dict[str, str], *, timeout: float) -> str:
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        raise
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[1:])} exited {process.returncode}: {text[-800:]}")
    return text


async def main() -> None:
    """``python -m tests.support.rabbit``: start the cluster, print its URLs, stop it on Enter."""
    cluster = RabbitCluster()
    try:
        await cluster.start()
        print(",".join(cluster.urls))
        await asyncio.to_thread(input)
    finally:
        await cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
