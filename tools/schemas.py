"""Writes the contracts as JSON Schemas and one AsyncAPI 3 document into ``docs/``.

python -m tools.schemas          # write
python -m tools.schemas --check  # exit 1 if docs/ is out of date with the models
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared import topics
from shared.contracts import CONTRACTS
from shared.envelope import CONTENT_TYPE

DOCS = Path(__file__).resolve().parents[1] / "docs"

PRODUCERS = {
    topics.ORDER_INTAKE: (topics.ORDER_REJECTED, topics.SCHOOL_INITIALISED, topics.INVOICE_ISSUED),
    topics.ACCOUNT_MANAGER: (topics.CLASSES_CREATED, topics.ACCOUNTS_CREATED),
    topics.CREDENTIAL_DISPATCH: (topics.CREDENTIALS_DISPATCHED, topics.INVOICE_DELIVERED),
    topics.DIRECTORY_SYNC: (),
}


def schema_files() -> dict[str, str]:
    files = {}
    for topic, model in sorted(CONTRACTS.items()):
        schema = model.model_json_schema()
        schema["$id"] = model.dataschema()
        schema["title"] = topic
        files[f"schemas/{topic}.v{model.major}.json"] = _dump(schema)
    return files


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic, model in sorted(CONTRACTS.items()):
        key = topic.replace(".", "_")
        messages[key] = {
            "name": topic,
            "title": topic,
            "contentType": CONTENT_TYPE,
            "summary": (model.__doc__ or topic).strip().splitlines()[0],
            "payload": {"$ref": f"#/components/schemas/{key}"},
        }
        channels[key] = {
            "address": topic,
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": "one.events",
                        "type": "topic",
                        "durable": True,
                        "autoDelete": False,
                        "vhost": "/",
                    },
                    "bindingVersion": "0.3.0",
                }
            },
        }
    operations: dict[str, Any] = {}
    for worker, produced in PRODUCERS.items():
        for topic in produced:
            key = topic.replace(".", "_")
            operations[f"{worker}_sends_{key}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{key}"},
                "summary": f"{worker} publishes {topic}",
            }
    for worker, consumed in topics.SUBSCRIPTIONS.items():
        for topic in consumed:
            key = topic.replace(".", "_")
            operations[f"{worker}_receives_{key}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{key}"},
                "summary": f"{worker} consumes {topic} from queue one.{worker}",
            }
    schemas = {}
    for topic, model in sorted(CONTRACTS.items()):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas[name] = definition
        schemas[topic.replace(".", "_")] = schema
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ONE onboarding pipeline",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 JSON (structured mode); routing key = type. "
            "The schemas describe the CloudEvent's data.",
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {"host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def expected() -> dict[str, str]:
    return {**schema_files(), "asyncapi.json": _dump(asyncapi())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for name, text in expected().items():
        path = DOCS / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if stale:
        print("docs/ is out of date, run `python -m tools.schemas`: " + ", ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
