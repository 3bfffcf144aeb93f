"""directory_sync's composition root."""

from pathlib import Path

from services.directory_sync.handlers import routes
from services.directory_sync.settings import DirectorySyncSettings
from services.directory_sync.store import DirectoryStore
from shared import topics
from shared.worker import Context, Wiring, Worker

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: DirectorySyncSettings | None = None) -> Worker:
    settings = settings or DirectorySyncSettings()

    async def wire(_: Context) -> Wiring[DirectoryStore]:
        return Wiring(routes=routes(), store=DirectoryStore)

    return Worker(topics.DIRECTORY_SYNC, settings, MIGRATIONS, wire)
