"""The ``onectl`` commands. Exit codes: 0 ok, 1 not found, 2 invalid input, 3 service
unreachable. Tables for people, ``--json`` for scripts."""

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from onectl import broker, db, render
from onectl.config import SOURCE, OnectlSettings
from onectl.errors import INVALID, CliError, invalid, not_found
from onectl.validate import Checked, Invalid, check_file_text
from shared import topics
from shared.contracts.common import Reason, reasons_from
from shared.contracts.directory import (
    DirectorySyncApproveRequested,
    DirectorySyncRequested,
    DirectorySyncRevertRequested,
)
from shared.envelope import Contract, new_event

T = TypeVar("T")

app = typer.Typer(
    name="onectl",
    help="Operate the ONE onboarding pipeline (same ONE_* settings as the workers).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
dlq_app = typer.Typer(help="Dead letters: list, show, replay.", no_args_is_help=True)
sync_app = typer.Typer(help="The ONDE feed: run, report, approve.", no_args_is_help=True)
schema_app = typer.Typer(help="Message schemas.", no_args_is_help=True)
topology_app = typer.Typer(help="The broker's topology.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(sync_app, name="sync")
app.add_typer(schema_app, name="schema")
app.add_typer(topology_app, name="topology")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def stdout() -> Console:
    return Console(soft_wrap=False, emoji=False)


def stderr() -> Console:
    return Console(stderr=True, emoji=False)


def settings() -> OnectlSettings:
    try:
        return OnectlSettings()
    except ValidationError as exc:
        raise invalid("bad ONE_* settings", details={"reasons": reasons_from(exc)}) from exc


def run(as_json: bool, work: Callable[[], Awaitable[T]]) -> T:
    """Run one command's coroutine; a ``CliError`` becomes its message and exit code."""
    try:
        return asyncio.run(_call(work))
    except CliError as error:
        _fail(error, as_json)
        raise typer.Exit(error.code) from error


def checked(as_json: bool, check: Callable[[], T]) -> T:
    """Run a check of the command line; a ``CliError`` becomes its message and exit code."""
    try:
        return check()
    except CliError as error:
        _fail(error, as_json)
        raise typer.Exit(error.code) from error


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


def _fail(error: CliError, as_json: bool) -> None:
    details = error.details or {}
    if as_json:
        payload = {"error": error.message, "code": error.code, **db.jsonable(details)}
        if "reasons" in details:
            payload["reasons"] = [r.model_dump() for r in details["reasons"]]
        typer.echo(render.to_json(payload))
        return
    console = stderr()
    console.print(Text.assemble(("error: ", "bold red"), error.message))
    reasons = details.get("reasons") if isinstance(details, dict) else None
    if reasons:
        console.print(render.reasons_table([_reason(r) for r in reasons], "Reasons"))


def _reason(value: Any) -> Reason:
    return value if isinstance(value, Reason) else Reason.model_validate(value)


def emit(as_json: bool, value: Any, human: Callable[[Console], None]) -> None:
    if as_json:
        typer.echo(render.to_json(value))
    else:
        human(stdout())


# ---------------------------------------------------------------------------------------
# publish
# ---------------------------------------------------------------------------------------


def checked_file(file: Path, wrap: str | None, correlationid: str | None) -> Checked:
    try:
        text = file.read_bytes()
    except OSError as exc:
        raise not_found(f"cannot read {file}: {exc.strerror or exc}") from exc
    try:
        return check_file_text(text, wrap_as=wrap, correlationid=correlationid)
    except Invalid as exc:
        raise CliError(
            INVALID,
            f"{file} is not a valid message; nothing sent",
            details={"reasons": exc.reasons},
        ) from exc


@app.command()
def publish(
    file: Annotated[
        Path, typer.Argument(help="A CloudEvent JSON file (or plain data with --wrap).")
    ],
    wrap: Annotated[
        str | None, typer.Option("--wrap", metavar="TOPIC", help="Wrap plain data as TOPIC.")
    ] = None,
    correlation_id: Annotated[
        str | None,
        typer.Option("--correlation-id", help="With --wrap (default: order/request id)."),
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Validate only, send nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Validate a message against its contract, then publish it with publisher confirms."""

    async def work() -> dict[str, Any]:
        message = checked_file(file, wrap, correlation_id)
        if not check:
            await broker.publish(settings(), message)
        return {
            "published": not check,
            "valid": True,
            "id": message.event_id,
            "type": message.topic,
            "correlationid": message.correlationid,
        }

    result = run(as_json, work)
    verb = "published" if result["published"] else "valid, not sent:"
    emit(
        as_json,
        result,
        lambda c: c.print(
            f"[green]✔[/] {verb} [bold]{result['type']}[/] id {escape(result['id'])} "
            f"correlationid {escape(result['correlationid'])}",
            highlight=False,
        ),
    )


# ---------------------------------------------------------------------------------------
# status, trace
# ---------------------------------------------------------------------------------------


@app.command()
def status(
    school: Annotated[str, typer.Argument(metavar="UAI|ORDER_ID")],
    as_json: JsonOpt = False,
) -> None:
    """One school's onboarding as the guide's three steps, with counts."""

    async def work() -> dict[str, Any]:
        async with db.reader(settings()) as reader:
            return await db.school_status(reader, school)

    result = run(as_json, work)
    emit(as_json, result, lambda c: c.print(render.status_view(result)))


@app.command()
def trace(
    correlation_id: Annotated[str, typer.Argument(metavar="CORRELATION_ID")],
    as_json: JsonOpt = False,
) -> None:
    """The timeline of one order or command across the four workers."""

    async def work() -> list[dict[str, Any]]:
        async with db.reader(settings()) as reader:
            return await db.trace(reader, correlation_id)

    timeline = run(as_json, work)
    emit(
        as_json,
        {"correlationid": correlation_id, "timeline": timeline},
        lambda c: c.print(render.trace_table(correlation_id, timeline)),
    )


@topology_app.command("apply")
def topology_apply(as_json: JsonOpt = False) -> None:
    """Declare every exchange, queue and binding of the pipeline (the deploy step, before
    the workers start; idempotent). Needs a broker user allowed to configure."""

    async def work() -> dict[str, Any]:
        applied = await broker.apply_topology(settings())
        return {"declared": applied.declared, "conflicts": applied.conflicts}

    result = run(as_json, work)

    def human(console: Console) -> None:
        console.print(f"[green]✔[/] {len(result['declared'])} objects declared", highlight=False)
        for conflict in result["conflicts"]:
            console.print(Text(f"! left as it is (other arguments): {conflict}", style="yellow"))

    emit(as_json, result, human)


@app.command("audit")
def audit_command(
    school: Annotated[str, typer.Argument(metavar="UAI")],
    account: Annotated[
        str | None, typer.Option("--account", metavar="ID", help="Only this account's.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Who handed out whose credentials, how, and what was delivered or refused."""

    async def work() -> dict[str, Any]:
        async with db.reader(settings()) as reader:
            return await db.audit(reader, school, account)

    result = run(as_json, work)
    emit(as_json, result, lambda c: c.print(render.audit_table(result)))


# ---------------------------------------------------------------------------------------
# dlq
# ---------------------------------------------------------------------------------------


@dlq_app.command("list")
def dlq_list(as_json: JsonOpt = False) -> None:
    """Every dead letter, read in place (nothing is taken off the queue)."""

    async def work() -> list[dict[str, Any]]:
        return [letter.summary() for letter in await broker.list_dead(settings())]

    letters = run(as_json, work)
    emit(as_json, letters, lambda c: c.print(render.dead_letters_table(letters)))


@dlq_app.command("show")
def dlq_show(
    message_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Show activation codes (masked by default).")
    ] = False,
) -> None:
    """One dead letter: its headers and its CloudEvent, activation codes masked."""

    async def work() -> list[dict[str, Any]]:
        found = await broker.show_dead(settings(), message_id)
        return [letter.detail(reveal=reveal) for letter in found]

    letters = run(as_json, work)

    def human(console: Console) -> None:
        for letter in letters:
            console.print(render.dead_letters_table([letter]))
            console.print_json(render.to_json({"headers": letter["headers"]}))
            body = letter["body"]
            if isinstance(body, dict):
                console.print_json(render.to_json(body))
            else:
                console.print(body, markup=False, highlight=False)

    emit(as_json, letters if len(letters) > 1 else letters[0], human)


@dlq_app.command("replay")
def dlq_replay(
    message_id: Annotated[str | None, typer.Argument(metavar="[ID]")] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Replay every dead letter.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Republish dead letters to the exchange under their original routing key, body and id
    unchanged, then remove them from the queue. Safe to repeat: inboxes ignore duplicates."""
    if (message_id is None) == (not replay_all):
        error = invalid("give one dead letter's ID, or --all")
        _fail(error, as_json)
        raise typer.Exit(error.code)

    async def work() -> list[dict[str, str]]:
        def select(letter: broker.DeadLetter) -> bool:
            return replay_all or broker.matches(letter, message_id or "")

        console = stderr()
        with console.status("replaying dead letters…", spinner="dots"):
            done = await broker.replay(
                settings(),
                select,
                on_done=lambda r: (
                    console.log(f"replayed {r.message_id} → {r.topic}") if not as_json else None
                ),
            )
        if message_id is not None and not done:
            raise not_found(f"no dead letter with id {message_id!r}")
        return [{"id": r.message_id, "topic": r.topic} for r in done]

    replayed = run(as_json, work)
    emit(
        as_json,
        {"replayed": replayed},
        lambda c: c.print(f"[green]✔[/] {len(replayed)} dead letter(s) replayed", highlight=False),
    )


# ---------------------------------------------------------------------------------------
# sync
# ---------------------------------------------------------------------------------------


def _command(model: type[Contract], data: dict[str, Any]) -> Contract:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(f"invalid {model.topic}", details={"reasons": reasons_from(exc)}) from exc


async def _send_command(
    command: Contract, request_id: str, *, wait: bool, timeout: float, as_json: bool
) -> dict[str, Any]:
    event = new_event(command, source=SOURCE, correlationid=request_id)
    message = Checked(event.type, event.id, event.correlationid, event.to_json())
    config = settings()
    result: dict[str, Any] = {"request_id": request_id, "id": event.id, "type": event.type}
    if not wait:
        await broker.publish(config, message)
        return result
    async with broker.connect(config) as connection:
        listener = broker.Listener(connection, config)
        await listener.bind(topics.DIRECTORY_SYNC_REPORTED, topics.COMMAND_REJECTED)
        await broker.publish(config, message)
        console = stderr()
        if not as_json:
            console.print(f"sent {event.type}, request_id {request_id}", highlight=False)
        with console.status(f"waiting for the report of {request_id}…", spinner="dots"):
            answer = await listener.wait_for(request_id, timeout)
    result["answer"] = answer
    if answer.get("type") == topics.COMMAND_REJECTED:
        raise CliError(
            INVALID,
            f"{event.type} refused",
            details={
                "request_id": request_id,
                "reasons": [_reason(r) for r in answer["data"].get("reasons", [])],
            },
        )
    return result


def _uai(value: str) -> str:
    return value.strip().upper()


def _print_sent(result: dict[str, Any]) -> Callable[[Console], None]:
    def human(console: Console) -> None:
        console.print(
            f"[green]✔[/] sent {result['type']}  request_id [bold]{result['request_id']}[/]",
            highlight=False,
        )
        answer = result.get("answer")
        if answer:
            data = answer["data"]
            console.print(
                f"run {data['run_id']}: [bold]{data['status']}[/]  "
                f"{render.counts_text(data.get('counts'))}",
                highlight=False,
            )
            for line in render.findings_lines(data):
                console.print(f"  {line}", highlight=False, markup=False)

    return human


@sync_app.command("run")
def sync_run(
    uai: Annotated[str, typer.Argument(metavar="UAI")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report only, apply nothing.")] = False,
    by: Annotated[str, typer.Option("--by", help="Who asks, for the record.")] = "onectl",
    wait: Annotated[bool, typer.Option("--wait", help="Wait for directory.sync.reported.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 120.0,
    as_json: JsonOpt = False,
) -> None:
    """Run one school's feed now (directory.sync.requested)."""
    request_id = f"onectl-{uuid.uuid4()}"

    async def work() -> dict[str, Any]:
        command = _command(
            DirectorySyncRequested,
            {"request_id": request_id, "requested_by": by, "uai": _uai(uai), "dry_run": dry_run},
        )
        return await _send_command(command, request_id, wait=wait, timeout=timeout, as_json=as_json)

    result = run(as_json, work)
    emit(as_json, result, _print_sent(result))


AcademieOpt = Annotated[
    str | None,
    typer.Option("--academie", metavar="NAME", help="An académie (any case): with --night."),
]
NightOpt = Annotated[
    datetime | None,
    typer.Option(
        "--night",
        formats=["%Y-%m-%d"],
        metavar="DATE",
        help="The day (YYYY-MM-DD) whose night run (ONE_NIGHTLY_AT, 02:00) to show.",
    ),
]


def _night(academie: str | None, night: datetime | None, *, uai: str | None) -> date | None:
    """The night asked for, or None for one school's runs; one or the other, not both."""
    if academie is None and night is None:
        if uai is None:
            raise invalid("give a UAI, or --academie NAME --night DATE")
        return None
    if uai is not None:
        raise invalid("give a UAI, or --academie and --night, not both")
    if academie is None or night is None:
        raise invalid("--academie and --night go together")
    return night.date()


@sync_app.command("report")
def sync_report(
    uai: Annotated[str | None, typer.Argument(metavar="[UAI]")] = None,
    academie: AcademieOpt = None,
    night: NightOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs, latest first.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """The last feed runs of one school, with the latest run's findings; or, with
    --academie and --night, every school of that night with its status and counts."""
    day = checked(as_json, lambda: _night(academie, night, uai=uai))
    if day is not None and academie is not None:
        _night_report(academie, day, as_json)
        return
    assert uai is not None

    async def work() -> list[dict[str, Any]]:
        async with db.reader(settings()) as reader:
            return await db.sync_runs(reader, _uai(uai), limit)

    runs = run(as_json, work)

    def human(console: Console) -> None:
        console.print(render.runs_table(_uai(uai), runs))
        if runs:
            for line in render.findings_lines(runs[0]):
                console.print(f"  {line}", highlight=False, markup=False)

    emit(as_json, {"uai": _uai(uai), "runs": runs}, human)


async def _night_runs(name: str, day: date) -> tuple[str, list[dict[str, Any]]]:
    async with db.reader(settings()) as reader:
        academie = await db.academie_named(reader, name)
        return academie, await db.night_runs(reader, academie, day)


def _night_report(name: str, day: date, as_json: bool) -> None:
    academie, runs = run(as_json, lambda: _night_runs(name, day))
    summary = render.night_summary(runs)

    def human(console: Console) -> None:
        console.print(render.night_table(academie, day.isoformat(), runs))
        console.print(
            ", ".join(f"{count} {status}" for status, count in summary.items()), highlight=False
        )
        for night_run in runs:
            if night_run["status"] in ("held", "rejected"):
                for line in render.findings_lines(night_run)[:5]:
                    console.print(f"  {night_run['uai']} {line}", highlight=False, markup=False)

    emit(
        as_json,
        {"academie": academie, "night": day.isoformat(), "summary": summary, "runs": runs},
        human,
    )


@sync_app.command("approve")
def sync_approve(
    uai: Annotated[str | None, typer.Argument(metavar="[UAI]")] = None,
    run_id: Annotated[str | None, typer.Argument(metavar="[RUN_ID]")] = None,
    by: Annotated[str, typer.Option("--by", help="Your name, kept with the run.")] = "",
    academie: AcademieOpt = None,
    night: NightOpt = None,
    held: Annotated[
        bool, typer.Option("--held", help="With --academie and --night: every held run.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Approve without asking.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the applied report.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 120.0,
    as_json: JsonOpt = False,
) -> None:
    """Approve a held run (directory.sync.approve.requested); or, with --academie, --night
    and --held, every held run of that night, after showing them and one confirmation."""
    checked(as_json, lambda: _required_name(by))
    day = checked(as_json, lambda: _night(academie, night, uai=uai))
    if day is not None and academie is not None:
        _approve_night(
            academie, day, by, held=held, yes=yes, wait=wait, timeout=timeout, as_json=as_json
        )
        return
    request_id = f"onectl-{uuid.uuid4()}"

    async def work() -> dict[str, Any]:
        if run_id is None or uai is None:
            raise invalid("give a UAI and a RUN_ID")
        command = _command(
            DirectorySyncApproveRequested,
            {"request_id": request_id, "approved_by": by, "uai": _uai(uai), "run_id": run_id},
        )
        config = settings()
        async with db.reader(config) as reader:
            held_run = await db.sync_run(reader, command.run_id)  # type: ignore[attr-defined]
        if held_run is None or held_run["uai"] != _uai(uai):
            raise not_found(f"no run {run_id} of UAI {_uai(uai)}")
        if held_run["status"] != "held" or held_run["approved_at"] is not None:
            raise invalid(f"run {run_id} is not waiting for approval (status {held_run['status']})")
        return await _send_command(command, request_id, wait=wait, timeout=timeout, as_json=as_json)

    result = run(as_json, work)
    emit(as_json, result, _print_sent(result))


def _approve_night(
    name: str,
    day: date,
    by: str,
    *,
    held: bool,
    yes: bool,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    checked(as_json, lambda: _night_approval_asked(held=held, yes=yes, as_json=as_json))
    academie, runs = run(as_json, lambda: _night_runs(name, day))
    waiting = [r for r in runs if r["status"] == "held" and r["approved_at"] is None]
    if not as_json:
        console = stdout()
        if not waiting:
            console.print(f"nothing held on the night of {day.isoformat()} in {academie}")
            return
        console.print(render.night_table(academie, day.isoformat(), waiting))
        for night_run in waiting:
            for line in render.findings_lines(night_run)[:5]:
                console.print(f"  {night_run['uai']} {line}", highlight=False, markup=False)
        question = f"Approve these {len(waiting)} held runs as {by!r}?"
        if not yes and not typer.confirm(question, default=False):
            console.print("nothing approved")
            return
    commands = [
        (
            f"onectl-{uuid.uuid4()}",
            night_run,
        )
        for night_run in waiting
    ]

    async def work() -> dict[str, Any]:
        sent = []
        for request_id, night_run in commands:
            command = _command(
                DirectorySyncApproveRequested,
                {
                    "request_id": request_id,
                    "approved_by": by,
                    "uai": night_run["uai"],
                    "run_id": str(night_run["run_id"]),
                },
            )
            event = new_event(command, source=SOURCE, correlationid=request_id)
            sent.append(Checked(event.type, event.id, event.correlationid, event.to_json()))
        config = settings()
        async with broker.connect(config) as connection:
            listener = broker.Listener(connection, config)
            if wait:
                await listener.bind(topics.DIRECTORY_SYNC_REPORTED, topics.COMMAND_REJECTED)
            await broker.publish_on(connection, config, sent)
            answers = (
                await listener.wait_for_all([m.correlationid for m in sent], timeout)
                if wait
                else {}
            )
        approved = [
            {
                "uai": night_run["uai"],
                "run_id": str(night_run["run_id"]),
                "request_id": request_id,
                "answer": _answer_status(answers.get(request_id)),
            }
            for request_id, night_run in commands
        ]
        return {"academie": academie, "night": day.isoformat(), "approved": approved}

    result = run(as_json, work)

    def human(console: Console) -> None:
        for item in result["approved"]:
            answer = f"  {item['answer']}" if item["answer"] else ""
            console.print(
                f"[green]✔[/] approval sent for {item['uai']} run {item['run_id']}{answer}",
                highlight=False,
            )

    emit(as_json, result, human)


@sync_app.command("revert")
def sync_revert(
    uai: Annotated[str, typer.Argument(metavar="UAI")],
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    by: Annotated[str, typer.Option("--by", help="Your name, kept with the revert.")] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Undo without asking.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the revert's report.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 120.0,
    as_json: JsonOpt = False,
) -> None:
    """Undo a school's last applied run (directory.sync.revert.requested): the school is put
    back as it was before it; refused once a later run has been applied."""
    checked(as_json, lambda: _required_name(by))
    if as_json and not yes:
        checked(as_json, lambda: _no_prompt_in_json())
    request_id = f"onectl-{uuid.uuid4()}"

    async def undone() -> dict[str, Any]:
        async with db.reader(settings()) as reader:
            found = await db.sync_run(reader, run_id if _is_uuid(run_id) else None)
            last = await db.last_applied_run(reader, _uai(uai))
        if found is None or found["uai"] != _uai(uai):
            raise not_found(f"no run {run_id} of UAI {_uai(uai)}")
        if found["status"] != "applied" or found["dry_run"]:
            raise invalid(f"run {run_id} was not applied (status {found['status']})")
        if str(last) != str(found["run_id"]):
            raise invalid(
                f"a later run ({last}) was applied to {_uai(uai)} since run {run_id}: only the"
                " school's last applied run can be undone"
            )
        return found

    target = run(as_json, undone)
    if not as_json:
        console = stdout()
        console.print(render.runs_table(_uai(uai), [target]))
        if not yes and not typer.confirm(
            f"Put {_uai(uai)} back as it was before run {run_id}?", default=False
        ):
            console.print("nothing undone")
            return

    async def work() -> dict[str, Any]:
        command = _command(
            DirectorySyncRevertRequested,
            {"request_id": request_id, "requested_by": by, "uai": _uai(uai), "run_id": run_id},
        )
        return await _send_command(command, request_id, wait=wait, timeout=timeout, as_json=as_json)

    result = run(as_json, work)
    emit(as_json, result, _print_sent(result))


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _no_prompt_in_json() -> None:
    raise invalid("--json cannot ask for confirmation: add --yes")


def _required_name(by: str) -> None:
    if not by.strip():
        raise invalid("--by NAME is required: your name is kept with the run")


def _night_approval_asked(*, held: bool, yes: bool, as_json: bool) -> None:
    if not held:
        raise invalid("with --academie and --night, say what to approve: --held")
    if as_json and not yes:
        _no_prompt_in_json()


def _answer_status(answer: dict[str, Any] | None) -> str | None:
    if answer is None:
        return None
    if answer.get("type") == topics.COMMAND_REJECTED:
        reasons = "; ".join(r.get("message", "") for r in answer["data"].get("reasons", []))
        return f"refused: {reasons}"
    return str(answer["data"].get("status"))


# ---------------------------------------------------------------------------------------
# schema
# ---------------------------------------------------------------------------------------


def _schema_tools() -> Any:
    try:
        from tools import schemas
    except ImportError:  # run outside the repository: tools/ sits next to onectl/
        sys.path.append(str(Path(__file__).resolve().parents[1]))
        try:
            from tools import schemas
        except ImportError as exc:
            raise not_found("tools.schemas not found next to onectl") from exc
    return schemas


@schema_app.command("export")
def schema_export(
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory to write into (default: docs/).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if out of date.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the JSON Schema of every message and one AsyncAPI 3 document."""

    async def work() -> dict[str, Any]:
        schemas = _schema_tools()
        target = out or schemas.DOCS
        files: dict[str, str] = schemas.expected()
        stale = [
            name
            for name, text in files.items()
            if not (target / name).exists() or (target / name).read_text() != text
        ]
        if check:
            if stale:
                raise not_found(f"{target} is out of date", details={"stale": stale})
            return {"dir": str(target), "files": sorted(files), "written": []}
        for name, text in files.items():
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return {"dir": str(target), "files": sorted(files), "written": sorted(stale)}

    result = run(as_json, work)
    emit(
        as_json,
        result,
        lambda c: c.print(
            f"[green]✔[/] {len(result['files'])} files in {escape(result['dir'])} "
            f"({len(result['written'])} changed)",
            highlight=False,
        ),
    )
