"""Formatting for people (rich) and for scripts (JSON): pure helpers, easy to test."""

import json
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from onectl.db import jsonable
from shared.contracts.common import Reason

DONE, TODO = "✔", "○"


def cells(*values: str) -> list[Text]:
    """Table cells as plain text: data never goes through markup or emoji codes."""
    return [Text(value) for value in values]


def to_json(value: Any) -> str:
    return json.dumps(jsonable(value), ensure_ascii=False, indent=2, sort_keys=False)


def short(value: str | None, width: int = 8) -> str:
    if not value:
        return "—"
    return value if len(value) <= width else value[:width] + "…"


def when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if isinstance(value, str) and value:
        return value.replace("T", " ")[:23]
    return "—"


def count_text(entry: dict[str, Any]) -> str:
    """``3``, ``2/5`` or ``—``; what is still pending or failed in brackets."""
    count, total = entry.get("count"), entry.get("total")
    if count is None:
        text = "—"
    elif total is not None:
        text = f"{count}/{total}"
    else:
        text = str(count)
    extras = [f"{entry[k]} {k}" for k in ("pending", "failed") if entry.get(k)]
    return f"{text} ({', '.join(extras)})" if extras else text


def detail_text(entry: dict[str, Any]) -> str:
    if entry.get("per_profile"):
        parts = ", ".join(f"{k}: {v}" for k, v in entry["per_profile"].items())
        if entry.get("shared"):
            parts += f" — dont {entry['shared']} partagé(s) avec une autre école"
        if entry.get("deactivated"):
            parts += f" — {entry['deactivated']} désactivé(s)"
        return parts
    for key in ("orders", "invoices"):
        if entry.get(key):
            return ", ".join(entry[key])
    if entry.get("requests"):
        return f"{entry['requests']} demande(s)"
    last = entry.get("last_run")
    if last:
        return f"dernier passage : {last.get('status') or last.get('state')}"
    return ""


def reasons_table(reasons: list[Reason], title: str = "Refusé") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("champ", style="bold")
    table.add_column("raison")
    for reason in reasons:
        table.add_row(*cells(reason.field, reason.message))
    return table


def status_view(status: dict[str, Any]) -> RenderableType:
    school = status["school"]
    parts: list[RenderableType] = [
        Text.assemble(
            (str(school["name"]), "bold"),
            f"  UAI {school['uai']}  ·  {school.get('provisioning') or '?'}",
            f"  ·  commande {school.get('order_id') or '—'}",
        )
    ]
    for number, step in enumerate(status["steps"], start=1):
        table = Table.grid(padding=(0, 2))
        table.add_column(width=1)
        table.add_column()
        table.add_column(justify="right")
        table.add_column()
        for entry in step["items"]:
            mark = Text(DONE, style="green") if entry["done"] else Text(TODO, style="yellow")
            detail: RenderableType = Text(detail_text(entry), style="dim")
            if entry.get("total"):
                detail = ProgressBar(total=entry["total"], completed=entry["count"], width=30)
            table.add_row(mark, Text(entry["label"]), Text(count_text(entry)), detail)
        style = "green" if step["done"] else "yellow"
        parts.append(Panel(table, title=f"Étape {number} · {step['title']}", border_style=style))
    if status["ready"]:
        parts.append(Text("Tout est prêt !", style="bold green"))
    return Group(*parts)


def trace_table(correlationid: str, timeline: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Trace {correlationid}", title_justify="left")
    table.add_column("time")
    table.add_column("worker")
    table.add_column("")
    table.add_column("topic", style="bold")
    table.add_column("id")
    table.add_column("caused by")
    for entry in timeline:
        arrow = "→ sent" if entry["action"] == "published" else "← got"
        table.add_row(
            *cells(
                when(entry["at"]),
                entry["worker"],
                arrow,
                entry["topic"],
                short(entry["message_id"]),
                short(entry.get("causationid")),
            )
        )
    return table


def audit_table(audit: dict[str, Any]) -> Table:
    table = Table(
        title=f"Remises d'identifiants — {audit['school']} ({audit['uai']})",
        title_justify="left",
    )
    for column in ("when", "what", "by", "accounts", "how", "outcome"):
        table.add_column(column, overflow="fold")
    for entry in audit["entries"]:
        by = (
            "système"
            if entry["requested_by"] is None
            else (f"{entry['requester_profile'] or '?'} {short(str(entry['requested_by']))}")
        )
        how = " ".join(filter(None, (entry["channel"], entry["layout"])))
        table.add_row(
            *cells(
                when(entry["at"]),
                entry["purpose"],
                by,
                str(len(entry["accounts"])),
                how or "—",
                _audit_outcome(entry),
            )
        )
    return table


def _audit_outcome(entry: dict[str, Any]) -> str:
    if entry["refused"]:
        return "refused: " + "; ".join(f"{r['field']}: {r['message']}" for r in entry["refused"])
    if entry["completed_at"] is None:
        return "pending"
    delivered, undeliverable = entry["delivered"] or [], entry["undeliverable"] or []
    sent_to = sorted({d["to"] for d in delivered if d.get("to")})
    parts = [f"delivered to {', '.join(sent_to)}"] if sent_to else []
    if undeliverable:
        parts.append(f"{len(undeliverable)} undeliverable")
    return "; ".join(parts) or "nothing delivered"


def dead_letters_table(letters: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Dead letters ({len(letters)})", title_justify="left")
    for column in ("id", "topic", "worker", "reason", "attempts", "dead at"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(
            *cells(
                letter["id"],
                letter["topic"],
                letter["worker"] or "—",
                letter["reason"] or "—",
                "—" if letter["attempts"] is None else str(letter["attempts"]),
                when(letter["dead_at"]),
            )
        )
    return table


def counts_text(counts: dict[str, Any] | None) -> str:
    if not counts:
        return "—"
    return " ".join(f"{k[0]}{v}" for k, v in counts.items() if v) or "0"


def runs_table(uai: str, runs: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Feed runs of {uai}", title_justify="left")
    for column in ("run", "trigger", "status", "counts", "err", "warn", "started", "finished"):
        table.add_column(column, overflow="fold")
    for run in runs:
        status = run["status"] or run["state"]
        if run.get("dry_run"):
            status = f"{status} (dry)"
        if run.get("approved_by"):
            status = f"{status}, approved by {run['approved_by']}"
        table.add_row(
            *cells(
                str(run["run_id"]),
                run["trigger"],
                status,
                counts_text(run.get("counts")),
                str(len(run.get("errors") or [])),
                str(len(run.get("warnings") or [])),
                when(run["created_at"]),
                when(run["finished_at"]),
            )
        )
    return table


def findings_lines(run: dict[str, Any]) -> list[str]:
    lines = [f"held: {reason}" for reason in run.get("hold_reasons") or []]
    for kind in ("errors", "warnings"):
        for finding in run.get(kind) or []:
            where = ":".join(
                str(p) for p in (finding.get("file"), finding.get("line")) if p is not None
            )
            lines.append(f"{kind[:-1]}: {where + ' ' if where else ''}{finding.get('message')}")
    return lines + across_schools_lines(run.get("across_schools"))


def across_schools_lines(across: dict[str, Any] | None) -> list[str]:
    """What applying a run decided across schools (account_manager's part of its report)."""
    if not across:
        return []
    lines = []
    if across["attached"]:
        lines.append(f"attached from another school: {across['attached']} person(s)")
    for pair in across["possible_duplicates"]:
        lines.append(
            f"warning: possible duplicate: new account {pair['account_id']} has the names of"
            f" account {pair['other_account_id']} of another school (not merged)"
        )
    return lines


def night_status(run: dict[str, Any]) -> str:
    """A nightly run's outcome in one word: ``turnover`` for an applied turnover run."""
    status = str(run.get("status") or run.get("state") or "—")
    if status == "applied" and run.get("turnover"):
        status = "turnover"
    if run.get("approved_by"):
        status = f"{status}, approved by {run['approved_by']}"
    return status


def night_summary(runs: list[dict[str, Any]]) -> dict[str, int]:
    """How many schools of the night ended each way (approvals aside)."""
    summary: dict[str, int] = {}
    for run in runs:
        key = night_status({**run, "approved_by": None})
        summary[key] = summary.get(key, 0) + 1
    return dict(sorted(summary.items()))


def leavers_text(counts: dict[str, Any] | None) -> str:
    if not counts or not counts.get("left"):
        return "—"
    expected = counts.get("expected_leavers") or 0
    return f"{counts['left']} ({expected} expected)" if expected else str(counts["left"])


def night_table(academie: str, night: str, runs: list[dict[str, Any]]) -> Table:
    table = Table(title=f"Night of {night}, académie {academie}", title_justify="left")
    for column in ("UAI", "school", "status", "created", "updated", "moved", "left", "run"):
        table.add_column(column, overflow="fold")
    for run in runs:
        counts = run.get("counts") or {}
        table.add_row(
            *cells(
                run["uai"],
                run.get("name") or "",
                night_status(run),
                str(counts.get("created", "—")),
                str(counts.get("updated", "—")),
                str(counts.get("moved", "—")),
                leavers_text(counts),
                str(run["run_id"]),
            )
        )
    return table
