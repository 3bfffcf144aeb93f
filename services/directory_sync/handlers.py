"""directory_sync's handlers: for now it registers the schools fed from ONDE."""

from services.directory_sync.store import DirectoryStore
from shared import topics
from shared.contracts.orders import SchoolInitialised
from shared.envelope import Envelope
from shared.logs import get_logger
from shared.messaging.consumer import Route

log = get_logger(__name__)


async def handle_school_initialised(
    event: Envelope[SchoolInitialised], *, store: DirectoryStore
) -> None:
    school = event.data
    if school.provisioning != "automatic":
        return
    added = await store.register_school(
        school.school_id,
        uai=school.uai,
        name=school.name,
        academie=school.academie,
        order_id=school.order_id,
    )
    log.info("feed_registered" if added else "feed_already_registered", uai=school.uai)


def routes() -> dict[str, Route[DirectoryStore]]:
    return {topics.SCHOOL_INITIALISED: Route(SchoolInitialised, handle_school_initialised)}
