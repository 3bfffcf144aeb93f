"""``python -m onectl`` and the ``onectl`` script."""

from onectl.cli import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
