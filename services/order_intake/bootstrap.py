"""order_intake's composition root: settings in, a ready worker out; no I/O at import."""

from pathlib import Path

from services.order_intake.handlers import routes
from services.order_intake.ports import OrderStore
from services.order_intake.settings import OrderIntakeSettings
from services.order_intake.store import PostgresOrderStore
from shared import topics
from shared.worker import Context, Wiring, Worker

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: OrderIntakeSettings | None = None) -> Worker:
    settings = settings or OrderIntakeSettings()

    async def wire(_: Context) -> Wiring[OrderStore]:
        return Wiring(routes=routes(settings), store=PostgresOrderStore)

    return Worker(topics.ORDER_INTAKE, settings, MIGRATIONS, wire)
