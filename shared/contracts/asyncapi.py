"""AsyncAPI 3 document of every event, generated from the catalogue (``rcc docs`` writes it to docs/): what each
service sends, and what each consuming service receives through its queue."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.contracts import load_catalogue

REF = "#/components/schemas/{model}"

ENVELOPE_ATTRIBUTES = {
    "specversion": {"type": "string", "const": "1.0"},
    "id": {"type": "string", "format": "uuid", "description": "Also the AMQP message_id"},
    "source": {"type": "string", "description": "/rcc/<service>"},
    "type": {"type": "string", "description": "Also the routing key"},
    "time": {"type": "string", "format": "date-time"},
    "subject": {"type": "string", "description": "The aggregate id (visit, member, ...)"},
    "datacontenttype": {"type": "string", "const": "application/json"},
    "dataschema": {"type": "string", "format": "uri", "description": "urn:rcc:schema:<type>:v<version>"},
    "siteid": {"type": "string"},
    "actorid": {"type": "string", "description": "token:<token id>; never a person's name"},
    "correlationid": {"type": "string"},
    "sequence": {
        "type": "string",
        "pattern": "^[0-9]+$",
        "description": "Per source, monotonic; the sequence extension's String: compare as a number",
    },
    "dataclassification": {"type": "string", "enum": ["internal", "sensitive"]},
}


# One consuming service: its queue and the routing keys bound to it (``services/*/consumers.py``).
Receiver = tuple[str, Sequence[str]]


def build_asyncapi(receivers: Mapping[str, Receiver] | None = None) -> dict[str, Any]:
    """``receivers``: by service, the queue it consumes and its bindings on ``rcc.events``."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for event_type, contract in sorted(load_catalogue().items()):
        # Keyed by event type: two services may well both have a class called Waitlisted.
        data_schema = contract.model_json_schema(ref_template=REF, mode="serialization")
        schemas.update(data_schema.pop("$defs", {}))
        schemas[event_type] = data_schema
        messages[event_type] = {
            "name": event_type,
            "title": contract.__name__,
            "summary": contract.summary,
            "contentType": "application/cloudevents+json",
            "tags": [{"name": contract.classification}],
            "payload": {
                "type": "object",
                "required": ["specversion", "id", "source", "type", "time", "siteid", "data"],
                "properties": {
                    **ENVELOPE_ATTRIBUTES,
                    "type": {"type": "string", "const": event_type},
                    "dataschema": {"type": "string", "format": "uri", "const": contract.dataschema()},
                    "dataclassification": {"type": "string", "const": contract.classification},
                    "data": {"$ref": REF.format(model=event_type)},
                },
            },
        }
        channels[event_type] = {
            "address": event_type,
            "messages": {contract.__name__: {"$ref": f"#/components/messages/{event_type}"}},
            "bindings": {
                "amqp": {"is": "routingKey", "exchange": {"name": "rcc.events", "type": "topic", "durable": True}}
            },
        }
        operations[f"publish {event_type}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{event_type.replace('/', '~1')}"},
            "summary": contract.summary,
        }
    for service, (queue, bindings) in sorted((receivers or {}).items()):
        received = [name for name in sorted(messages) if any(topic_matches(key, name) for key in bindings)]
        channel = f"queue-{queue}"
        channels[channel] = {
            "address": queue,
            "description": (
                f"The {service} service's durable quorum queue, bound to rcc.events by "
                f"{', '.join(bindings)}. A message that fails more than the delivery limit goes to {queue}.dead "
                "through rcc.dead."
            ),
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in received},
            "bindings": {
                "amqp": {
                    "is": "queue",
                    "queue": {"name": queue, "durable": True, "exclusive": False, "autoDelete": False},
                }
            },
        }
        operations[f"receive {service}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": f"What the {service} service consumes (routing keys: {', '.join(bindings)})",
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in received],
            "bindings": {"amqp": {"ack": True}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Recovery community center events",
            "version": "1.0.0",
            "description": "Every event the services publish on the topic exchange rcc.events. Ids, never names.",
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "broker": {
                "host": "{host}:{port}",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "pathname": "/",
                "description": "RabbitMQ (3.10+): the topic exchange rcc.events, and rcc.dead for dead letters. "
                "Every exchange and queue name takes the deployment's RCC_BROKER_PREFIX in front.",
                "variables": {
                    "host": {"default": "127.0.0.1", "description": "From RCC_AMQP_URL"},
                    "port": {"default": "5672"},
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: ``*`` is one dot-separated word, ``#`` zero or more."""

    def match(words: list[str], parts: list[str]) -> bool:
        if not words:
            return not parts
        if words[0] == "#":
            return any(match(words[1:], parts[i:]) for i in range(len(parts) + 1))
        return bool(parts) and words[0] in ("*", parts[0]) and match(words[1:], parts[1:])

    return match(pattern.split("."), key.split("."))
