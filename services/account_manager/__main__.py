from services.account_manager.bootstrap import build
from services.account_manager.settings import AccountManagerSettings
from shared import logs, runtime
from shared.topics import ACCOUNT_MANAGER


def main() -> None:
    settings = runtime.settings_or_exit(AccountManagerSettings)
    runtime.run(
        lambda: build(settings), lambda: logs.configure(ACCOUNT_MANAGER, settings.log_level)
    )


if __name__ == "__main__":
    main()
