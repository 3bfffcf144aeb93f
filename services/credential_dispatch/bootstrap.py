"""credential_dispatch's composition root: one browser and one SMTP pool per worker."""

from pathlib import Path

from services.credential_dispatch.delivery import DeliveryLoop
from services.credential_dispatch.documents import Documents
from services.credential_dispatch.handlers import routes
from services.credential_dispatch.mailer import Mailer
from services.credential_dispatch.ports import DispatchStore
from services.credential_dispatch.renderer import PdfRenderer
from services.credential_dispatch.retention import RetentionLoop
from services.credential_dispatch.settings import CredentialDispatchSettings
from services.credential_dispatch.store import DeliveryQueries, PostgresDispatchStore
from shared import topics
from shared.worker import Context, Wiring, Worker

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: CredentialDispatchSettings | None = None) -> Worker:
    settings = settings or CredentialDispatchSettings()

    async def wire(context: Context) -> Wiring[DispatchStore]:
        renderer = PdfRenderer(settings.chromium_path, concurrency=settings.render_concurrency)
        await renderer.start()
        mailer = Mailer(
            settings.smtp_host,
            settings.smtp_port,
            pool_size=settings.smtp_pool_size,
            timeout=settings.smtp_timeout,
            username=settings.smtp_username,
            password=settings.smtp_password,
            tls=settings.smtp_tls,
            tls_context=settings.smtp_tls_context(),
            rate_per_second=settings.smtp_rate_per_second,
        )
        loop = DeliveryLoop(
            DeliveryQueries(context.pool),
            documents=Documents(settings.ent_url),
            renderer=renderer,
            mailer=mailer,
            settings=settings,
            on_outcome=context.relay.waker,
        )
        retention = RetentionLoop(
            context.pool,
            document_days=settings.document_retention_days,
            audit_days=settings.audit_retention_days,
            interval_seconds=settings.retention_interval_seconds,
        )
        return Wiring(
            routes=routes(),
            store=PostgresDispatchStore,
            loops=[loop.run, retention.run],
            after_commit=[loop.waker.wake],
            closers=[renderer.stop, mailer.close],
        )

    return Worker(topics.CREDENTIAL_DISPATCH, settings, MIGRATIONS, wire)
