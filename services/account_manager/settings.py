from shared import topics
from shared.settings import CommonSettings, own_ops_port


class AccountManagerSettings(CommonSettings):
    ops_port: int = own_ops_port(topics.ACCOUNT_MANAGER)
    activation_ttl_days: int = 90
    # A leaver who had activated his account is kept, deactivated, this long (and restored
    # if the feed brings him back meanwhile), then removed by the purge.
    deactivation_grace_days: float = 90.0
    # One person across schools (docs/one-person-across-schools.md): a newcomer pupil is
    # found in another school by his INE, a newcomer parent by his names and email, and a
    # pupil leaving at the turnover with an INE is kept (deactivated) for the grace period
    # so that another school can take him back.
    # Off: each school has its own accounts, as before.
    accounts_across_schools: bool = True
    purge_interval_seconds: float = 3600.0
    purge_batch: int = 500
