"""onectl's settings: the workers' own ``ONE_*`` environment."""

from urllib.parse import urlsplit, urlunsplit

from shared.messaging.topology import Names
from shared.settings import CommonSettings

SOURCE = "urn:one:onectl"
MAINTENANCE_DATABASES = ("", "postgres", "template1")


class OnectlSettings(CommonSettings):
    """Same variables as the workers, and ``ONE_OPS_DATABASE_URL``: the operator's own
    login, a member of the role ``one_ops``, which may read the workers' ``_ops`` views
    and nothing else. Without it ``ONE_DATABASE_ADMIN_URL`` gives the operator's
    credentials. When the URL names the maintenance database (as the workers' admin URL
    does), the pipeline's database is taken from ``ONE_DATABASE_URL``."""

    connect_timeout: float = 5.0
    ops_database_url: str | None = None

    @property
    def names(self) -> Names:
        return Names(exchange=self.exchange, prefix=self.topology_prefix)

    @property
    def reader_url(self) -> str:
        return reader_url(self.ops_database_url or self.database_admin_url, self.database_url)


def reader_url(login_url: str | None, database_url: str) -> str:
    """The URL onectl reads the workers' views with: ``login_url``'s credentials on the
    pipeline's database (see ``OnectlSettings``)."""
    if not login_url:
        return database_url
    login = urlsplit(login_url)
    if login.path.lstrip("/") not in MAINTENANCE_DATABASES:
        return login_url
    database = urlsplit(database_url).path.lstrip("/") or "postgres"
    return urlunsplit(login._replace(path=f"/{database}"))


def load() -> OnectlSettings:
    return OnectlSettings()
