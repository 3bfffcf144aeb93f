"""account_manager's composition root."""

from pathlib import Path

from services.account_manager.handlers import routes
from services.account_manager.settings import AccountManagerSettings
from services.account_manager.store import AccountStore
from shared import topics
from shared.worker import Context, Wiring, Worker

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: AccountManagerSettings | None = None) -> Worker:
    settings = settings or AccountManagerSettings()

    async def wire(_: Context) -> Wiring[AccountStore]:
        return Wiring(routes=routes(settings), store=AccountStore)

    return Worker(topics.ACCOUNT_MANAGER, settings, MIGRATIONS, wire)
