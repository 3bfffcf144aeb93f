from pathlib import Path

from shared.settings import CommonSettings


class DirectorySyncSettings(CommonSettings):
    # Where the académies drop each school's nightly ONDE export: <feed_dir>/<UAI>/.
    feed_dir: Path = Path("var/feed")
