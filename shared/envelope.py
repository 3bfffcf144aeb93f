"""CloudEvents 1.0 envelopes (structured JSON mode) and the helpers that build them."""

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

CONTENT_TYPE = "application/cloudevents+json"
ATTRIBUTE_LENGTH = 200
# A major version of more than 9 digits is no version of ours: unreadable, not a crash.
_SCHEMA_RE = re.compile(r"^urn:one:schema:(?P<type>[a-z0-9_.]+):(?P<major>\d{1,9})(\.\d+)?$")


class Contract(BaseModel):
    """Base of every message payload: knows its topic and its major schema version."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    topic: ClassVar[str]
    major: ClassVar[int] = 1

    @classmethod
    def dataschema(cls) -> str:
        return f"urn:one:schema:{cls.topic}:{cls.major}"


class Serialised(Contract):
    """A payload serialised already, where it was made (a worker process): enveloped and
    published as its text, not parsed and serialised again. A subclass names the topic
    and the contract whose JSON ``text`` is."""

    text: str


D = TypeVar("D")


class Envelope(BaseModel, Generic[D]):
    model_config = ConfigDict(extra="allow", frozen=True)

    # Every attribute a sender writes is bounded: it is logged, copied into headers and
    # metrics, and stored (inbox, outbox). Longer: dead-lettered with a short reason.
    specversion: str = Field(pattern=r"^1\.0$")
    id: str = Field(min_length=1, max_length=ATTRIBUTE_LENGTH)
    source: str = Field(min_length=1, max_length=ATTRIBUTE_LENGTH)
    type: str = Field(min_length=1, max_length=ATTRIBUTE_LENGTH)
    time: datetime
    datacontenttype: str = Field(default="application/json", max_length=ATTRIBUTE_LENGTH)
    dataschema: str = Field(max_length=ATTRIBUTE_LENGTH)
    correlationid: str = Field(min_length=1, max_length=ATTRIBUTE_LENGTH)
    causationid: str | None = Field(default=None, max_length=ATTRIBUTE_LENGTH)
    data: D

    def to_json(self) -> bytes:
        """Structured-mode JSON. The payload is dumped as its own model (not as the
        envelope's declared type) and keeps its nulls; absent attributes are omitted."""
        # Serialised by pydantic-core, head and payload apart, then joined: a large payload
        # (accounts.created of 500 accounts) never goes through Python dicts and json.
        head = self.model_dump_json(exclude={"data"}, exclude_none=True).encode()
        if isinstance(self.data, Serialised):
            data = self.data.text.encode()
        elif isinstance(self.data, BaseModel):
            data = self.data.model_dump_json().encode()
        else:
            data = json.dumps(self.data, ensure_ascii=False).encode()
        return head[:-1] + b',"data":' + data + b"}"


RawEnvelope = Envelope[dict[str, Any]]


def schema_major(dataschema: str) -> int | None:
    """The major version in ``urn:one:schema:<type>:<major>``, or None if unreadable."""
    found = _SCHEMA_RE.match(dataschema)
    return int(found["major"]) if found else None


def new_id() -> str:
    return str(uuid.uuid4())


def new_event(
    data: Contract,
    *,
    source: str,
    correlationid: str,
    causationid: str | None = None,
    event_id: str | None = None,
) -> Envelope[Contract]:
    return Envelope[Contract](
        specversion="1.0",
        id=event_id or new_id(),
        source=source,
        type=data.topic,
        time=datetime.now(UTC),
        dataschema=data.dataschema(),
        correlationid=correlationid,
        causationid=causationid,
        data=data,
    )


def follow(cause: Envelope[Any], data: Contract, *, source: str) -> Envelope[Contract]:
    """An event caused by ``cause``: same correlation, causation = the cause's id."""
    return new_event(data, source=source, correlationid=cause.correlationid, causationid=cause.id)
