"""AsyncAPI 3 document of every event, generated from the catalogue (``rcc docs`` writes it to docs/)."""

from __future__ import annotations

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
    "dataschema": {"type": "string"},
    "siteid": {"type": "string"},
    "actorid": {"type": "string", "description": "token:<token id>; never a person's name"},
    "correlationid": {"type": "string"},
    "sequence": {"type": "integer", "description": "Per source, monotonic"},
    "dataclassification": {"type": "string", "enum": ["internal", "sensitive"]},
}


def build_asyncapi() -> dict[str, Any]:
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
                    "dataschema": {"type": "string", "const": contract.dataschema()},
                    "dataclassification": {"type": "string", "const": contract.classification},
                    "data": {"$ref": REF.format(model=event_type)},
                },
            },
        }
        channels[event_type] = {
            "address": event_type,
            "messages": {contract.__name__: {"$ref": f"#/components/messages/{event_type}"}},
            "bindings": {"amqp": {"is": "routingKey", "exchange": {"name": "rcc.events", "type": "topic",
                                                                   "durable": True}}},
        }
        operations[f"publish {event_type}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{event_type.replace('/', '~1')}"},
            "summary": contract.summary,
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Recovery community center events",
            "version": "1.0.0",
            "description": "Every event the services publish on the topic exchange rcc.events. Ids, never names.",
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
