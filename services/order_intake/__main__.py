from services.order_intake.bootstrap import build
from services.order_intake.settings import OrderIntakeSettings
from shared import logs, runtime
from shared.topics import ORDER_INTAKE


def main() -> None:
    settings = runtime.settings_or_exit(OrderIntakeSettings)
    runtime.run(lambda: build(settings), lambda: logs.configure(ORDER_INTAKE, settings.log_level))


if __name__ == "__main__":
    main()
