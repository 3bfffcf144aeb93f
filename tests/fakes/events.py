"""The inbox and outbox part every fake store shares, and a unit of work over a fake that
undoes a failed attempt the way a rolled-back transaction does."""

import copy
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.envelope import Contract, Envelope


@dataclass
class InMemoryEventStore:
    """``shared.store.EventStore`` in memory: ``emitted`` holds every event committed."""

    inbox: dict[str, str] = field(default_factory=dict)  # message id -> topic
    emitted: list[Envelope[Any]] = field(default_factory=list)

    async def claim(self, message_id: str, topic: str) -> bool:
        if message_id in self.inbox:
            return False
        self.inbox[message_id] = topic
        return True

    async def emit(self, event: Envelope[Contract]) -> None:
        self.emitted.append(event)

    async def emit_all(self, events: Sequence[Envelope[Contract]]) -> None:
        self.emitted.extend(events)

    def topics(self) -> list[str]:
        return [event.type for event in self.emitted]


F = TypeVar("F", bound=InMemoryEventStore)


def unit_of_work(store: F) -> Callable[[], AbstractAsyncContextManager[F]]:
    """Each attempt sees the store as the last committed one left it; an attempt that
    raises leaves nothing behind (inbox claim, rows, events), as a rollback would."""

    @asynccontextmanager
    async def begin() -> AsyncIterator[F]:
        before = copy.deepcopy(store.__dict__)
        try:
            yield store
        except BaseException:
            store.__dict__.clear()
            store.__dict__.update(before)
            raise

    return begin
