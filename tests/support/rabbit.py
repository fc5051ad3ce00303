"""The broker from the operator's side: ``rabbitmqctl`` to find and close connections (only ours: the broker is
shared with everyone else's test runs) and passive declares to read a queue's depth and consumers."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

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
