from shared.settings import CommonSettings


class AccountManagerSettings(CommonSettings):
    activation_ttl_days: int = 90
