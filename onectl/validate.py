"""Checks a message against its contract before anything is sent (no I/O here)."""

import json
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from onectl.config import SOURCE
from shared.contracts import CONTRACTS
from shared.contracts.common import Reason, reasons_from
from shared.envelope import Contract, RawEnvelope, new_event, schema_major


@dataclass(frozen=True)
class Checked:
    """A message ready to publish: its routing key, ids and the exact body to send."""

    topic: str
    event_id: str
    correlationid: str
    body: bytes


class Invalid(Exception):
    def __init__(self, reasons: list[Reason]) -> None:
        super().__init__("; ".join(f"{r.field}: {r.message}" for r in reasons))
        self.reasons = reasons


def parse_json(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid([Reason(field="(file)", message=f"not JSON: {exc}")]) from exc


def model_for(topic: str) -> type[Contract]:
    model = CONTRACTS.get(topic)
    if model is None:
        raise Invalid([Reason(field="type", message=f"unknown type {topic!r}")])
    return model


def _prefixed(prefix: str, reasons: list[Reason]) -> list[Reason]:
    return [
        Reason(field=f"{prefix}.{r.field}" if r.field != "(message)" else prefix, message=r.message)
        for r in reasons
    ]


def check_cloudevent(document: Any) -> Checked:
    """A CloudEvent as a file gives it: envelope, known type, major version, then data.
    Every reason found is reported at once."""
    if not isinstance(document, dict):
        raise Invalid([Reason(field="(message)", message="a CloudEvent is a JSON object")])
    try:
        envelope = RawEnvelope.model_validate(document)
    except ValidationError as exc:
        raise Invalid(reasons_from(exc)) from exc
    reasons: list[Reason] = []
    model = CONTRACTS.get(envelope.type)
    if model is None:
        reasons.append(Reason(field="type", message=f"unknown type {envelope.type!r}"))
        raise Invalid(reasons)
    major = schema_major(envelope.dataschema)
    if major is None or not envelope.dataschema.startswith(f"urn:one:schema:{envelope.type}:"):
        reasons.append(
            Reason(
                field="dataschema",
                message=f"expected {model.dataschema()}, got {envelope.dataschema!r}",
            )
        )
    elif major != model.major:
        reasons.append(
            Reason(
                field="dataschema",
                message=f"major version {major} unsupported: the workers read {model.dataschema()}",
            )
        )
    try:
        model.model_validate(envelope.data)
    except ValidationError as exc:
        reasons.extend(_prefixed("data", reasons_from(exc)))
    if reasons:
        raise Invalid(reasons)
    return Checked(
        topic=envelope.type,
        event_id=envelope.id,
        correlationid=envelope.correlationid,
        body=json.dumps(document, ensure_ascii=False).encode(),
    )


def default_correlation(data: dict[str, Any]) -> str:
    """What a message's conversation is known by: its order or request id, else new."""
    for key in ("order_id", "request_id"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return str(uuid.uuid4())


def wrap(document: Any, topic: str, *, correlationid: str | None = None) -> Checked:
    """Plain data wrapped into a new CloudEvent of ``topic``, once it validates."""
    model = model_for(topic)
    if not isinstance(document, dict):
        raise Invalid([Reason(field="data", message="the data of a message is a JSON object")])
    try:
        data = model.model_validate(document)
    except ValidationError as exc:
        raise Invalid(_prefixed("data", reasons_from(exc))) from exc
    event = new_event(
        data, source=SOURCE, correlationid=correlationid or default_correlation(document)
    )
    return Checked(
        topic=event.type, event_id=event.id, correlationid=event.correlationid, body=event.to_json()
    )


def check_file_text(
    text: str | bytes, *, wrap_as: str | None = None, correlationid: str | None = None
) -> Checked:
    document = parse_json(text)
    if wrap_as is not None:
        return wrap(document, wrap_as, correlationid=correlationid)
    return check_cloudevent(document)
