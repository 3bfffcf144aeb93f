from services.credential_dispatch.bootstrap import build
from services.credential_dispatch.settings import CredentialDispatchSettings
from shared import logs, runtime
from shared.topics import CREDENTIAL_DISPATCH


def main() -> None:
    settings = runtime.settings_or_exit(CredentialDispatchSettings)
    runtime.run(
        lambda: build(settings), lambda: logs.configure(CREDENTIAL_DISPATCH, settings.log_level)
    )


if __name__ == "__main__":
    main()
