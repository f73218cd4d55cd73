"""`tradsys alerts list|tail|ack`: the daemon's alerts, past and live."""

from typing import Annotated, Any

import typer

from tradsys.cli.output import JsonOption, coloured, console, emit_json, emit_line, handle_errors, table, to_dict, when
from tradsys.cli.client import Client
from tradsys.cli.follow import ReconnectOption, follow
from tradsys.proto import alerts_pb2 as pb

alerts_app = typer.Typer(help="Alerts: list, follow live, acknowledge.", no_args_is_help=True)

STATE_STYLE = {"firing": "bold red", "pending": "yellow", "resolved": "green"}
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def alert_doc(update: Any) -> dict[str, Any]:
    doc = to_dict(update.alert)
    doc["acked"] = update.acked
    doc["value"] = update.value
    return doc


def alert_line(doc: dict[str, Any]) -> str:
    stamp = doc["resolved_ns"] if doc["state"] == "resolved" else doc["started_ns"]
    labels = " ".join(f"{k}={v}" for k, v in sorted((doc.get("labels") or {}).items()))
    return " ".join(p for p in [
        when(stamp), coloured(f"{doc['state']:<8}", STATE_STYLE.get(doc["state"], "")),
        coloured(doc["severity"], SEVERITY_STYLE.get(doc["severity"], "")), doc["rule"], labels, "—", doc["summary"],
        "(acked)" if doc["acked"] else "",
    ] if p)


@alerts_app.command("list")
@handle_errors
def list_alerts(
    state: Annotated[str | None, typer.Option("--state", help="pending, firing or resolved.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many, newest first.")] = 50,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Alerts the daemon raised, newest first.

    Example: tradsys alerts list --state firing
    """
    client = Client()
    reply = client.call(client.alerts.ListAlerts, pb.ListAlertsRequest(state=state or "", limit=limit))
    docs = [alert_doc(a) for a in reply.alerts]
    if as_json:
        emit_json(docs)
        return
    if not docs:
        console.print("no alerts")
        return
    console.print(table("alerts (acknowledge one with `tradsys alerts ack ID`)",
                        ["id", "started", "state", "severity", "rule", "labels", "summary", "acked"], [
        [d["id"], when(d["started_ns"]), coloured(d["state"], STATE_STYLE.get(d["state"], "")),
         coloured(d["severity"], SEVERITY_STYLE.get(d["severity"], "")), d["rule"],
         " ".join(f"{k}={v}" for k, v in sorted((d.get("labels") or {}).items())), d["summary"],
         "yes" if d["acked"] else ""]
        for d in docs
    ], optional=["rule", "labels", "started", "severity"]))


@alerts_app.command("tail")
@handle_errors
def tail_alerts(as_json: Annotated[bool, JsonOption] = False, reconnect: ReconnectOption = True) -> None:
    """Print alert transitions (pending, firing, resolved) as they happen, until Ctrl-C.

    Example: tradsys alerts tail --json
    """
    client = Client()

    def emit(_kind: str, update: Any) -> None:
        doc = alert_doc(update)
        if as_json:
            emit_line(doc)
        else:
            console.print(alert_line(doc), soft_wrap=True)

    follow(client, [(lambda: client.stream(client.alerts.StreamAlerts, pb.StreamAlertsRequest()), "alert")], emit,
           reconnect)


@alerts_app.command("ack")
@handle_errors
def ack(
    alert_id: Annotated[str, typer.Argument(help="The alert's id, as `alerts list` shows it.")],
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Acknowledge an alert: someone is on it.

    Example: tradsys alerts ack kill_switch_on
    """
    client = Client()
    doc = alert_doc(client.call(client.alerts.AckAlert, pb.AckAlertRequest(id=alert_id)).alert)
    if as_json:
        emit_json(doc)
    else:
        console.print(f"acknowledged: {alert_line(doc)}")
