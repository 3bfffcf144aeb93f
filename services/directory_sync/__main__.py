from services.directory_sync.bootstrap import build
from services.directory_sync.settings import DirectorySyncSettings
from shared import logs, runtime
from shared.topics import DIRECTORY_SYNC


def main() -> None:
    settings = runtime.settings_or_exit(DirectorySyncSettings)
    runtime.run(lambda: build(settings), lambda: logs.configure(DIRECTORY_SYNC, settings.log_level))


if __name__ == "__main__":
    main()
