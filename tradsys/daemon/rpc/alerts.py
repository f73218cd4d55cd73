"""AlertService: alert history from the store, live transitions from the hub, acknowledgement.

A stream opens with the alerts active at that moment, then follows transitions, so a client that
connects late still sees what is firing (it may see one of them twice).
"""

import json
from collections.abc import Callable
from typing import Any

import grpc

from tradsys.daemon.rpc.gate import Gate
from tradsys.daemon.rpc.streaming import Fanout, Stream, checked, pump
from tradsys.proto import alerts_pb2 as pb
from tradsys.proto import alerts_pb2_grpc as pb_grpc
from tradsys.proto import ws_pb2

SEVERITIES = {"info": ws_pb2.Alert.SEVERITY_INFO, "warning": ws_pb2.Alert.SEVERITY_WARNING,
              "critical": ws_pb2.Alert.SEVERITY_CRITICAL}
STATES = {"pending": ws_pb2.Alert.STATE_PENDING, "firing": ws_pb2.Alert.STATE_FIRING,
          "resolved": ws_pb2.Alert.STATE_RESOLVED}


def alert_msg(record: dict[str, Any]) -> pb.AlertUpdate:
    labels = record.get("labels") or {}
    if isinstance(labels, str):
        labels = json.loads(labels)
    value = record.get("value")
    return pb.AlertUpdate(
        alert=ws_pb2.Alert(
            id=record["id"], rule=record["rule"], severity=SEVERITIES.get(record["severity"], 0),
            state=STATES.get(record["state"], 0), labels={k: str(v) for k, v in labels.items()},
            summary=record.get("summary") or "", started_ns=record.get("started_ns") or 0,
            resolved_ns=record.get("resolved_ns") or 0,
        ),
        acked=bool(record.get("acked")),
        value="" if value is None else f"{value:g}",
    )


class AlertService(pb_grpc.AlertServiceServicer):
    def __init__(self, store: Any, fanout: Fanout, gate: Gate, active: Callable[[], list[dict[str, Any]]]) -> None:
        self.store = store
        self.fanout = fanout
        self.gate = gate
        self.active = active
        """The alerts pending or firing right now: a new stream starts with them."""

    def ListAlerts(self, request: pb.ListAlertsRequest, context: grpc.ServicerContext) -> pb.ListAlertsResponse:
        self.gate.check(context, "read")
        if request.state and request.state not in STATES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"state must be one of {', '.join(STATES)}")
        rows = self.store.list_alerts(request.state or None, min(request.limit or 100, 1000))
        return pb.ListAlertsResponse(alerts=[alert_msg(r) for r in rows])

    async def StreamAlerts(self, request: pb.StreamAlertsRequest, context: grpc.aio.ServicerContext) -> None:
        """The alerts firing now, then every change."""
        await checked(context, lambda c: self.gate.check(c, "read"))
        stream = Stream(self.fanout, {"alerts"})
        try:
            for record in self.active():
                await context.write(alert_msg(record).SerializeToString())
        except BaseException:
            stream.close()
            raise
        await pump(context, stream, alert_msg)

    def AckAlert(self, request: pb.AckAlertRequest, context: grpc.ServicerContext) -> pb.AckAlertResponse:
        self.gate.check(context, "trade")
        if not self.store.ack_alert(request.id):
            context.abort(grpc.StatusCode.NOT_FOUND, f"no alert {request.id!r}")
        row = next((r for r in self.store.list_alerts(None, 1000) if r["id"] == request.id), None)
        return pb.AckAlertResponse(alert=alert_msg(row or {"id": request.id, "rule": "", "severity": "", "state": ""}))
