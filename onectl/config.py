"""onectl's settings: the workers' own ``ONE_*`` environment."""

from urllib.parse import urlsplit, urlunsplit

from shared.messaging.topology import Names
from shared.settings import CommonSettings

SOURCE = "urn:one:onectl"
MAINTENANCE_DATABASES = ("", "postgres", "template1")


class OnectlSettings(CommonSettings):
    """Same variables as the workers. ``ONE_DATABASE_ADMIN_URL`` gives the operator's
    credentials; when it names the maintenance database (as the workers' does), the
    pipeline's database is taken from ``ONE_DATABASE_URL``."""

    connect_timeout: float = 5.0

    @property
    def names(self) -> Names:
        return Names(exchange=self.exchange, prefix=self.topology_prefix)

    @property
    def reader_url(self) -> str:
        return reader_url(self.database_admin_url, self.database_url)


def reader_url(admin_url: str | None, database_url: str) -> str:
    """The URL onectl reads the workers' schemas with (see ``OnectlSettings``)."""
    if not admin_url:
        return database_url
    admin = urlsplit(admin_url)
    if admin.path.lstrip("/") not in MAINTENANCE_DATABASES:
        return admin_url
    database = urlsplit(database_url).path.lstrip("/") or "postgres"
    return urlunsplit(admin._replace(path=f"/{database}"))


def load() -> OnectlSettings:
    return OnectlSettings()
