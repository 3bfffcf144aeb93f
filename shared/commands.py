"""What every worker does with a command it refuses: one ``command.rejected``, logged."""

from typing import Any

from shared.contracts.commands import rejection
from shared.contracts.common import Reason
from shared.envelope import Envelope, follow
from shared.logs import get_logger
from shared.store import EventStore

log = get_logger(__name__)


async def reject_command(
    event: Envelope[Any], reasons: list[Reason], *, store: EventStore, source: str
) -> None:
    """Emit ``command.rejected`` for ``event`` (in the store's transaction) and log it."""
    await store.emit(follow(event, rejection(event.type, event.data, reasons), source=source))
    log.info("command_rejected", reasons=[r.field for r in reasons])
