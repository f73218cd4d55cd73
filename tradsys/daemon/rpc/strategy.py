"""StrategyService: list strategy kinds with their parameters, start, stop and watch live instances."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import grpc

from tradsys.daemon.rpc.gate import Gate
from tradsys.daemon.strategies import StrategyHost, StrategyRequestError
from tradsys.engine.strategy.params import Duration
from tradsys.proto import strategy_pb2 as pb
from tradsys.proto import strategy_pb2_grpc as pb_grpc

PARAM_TYPES = {
    int: pb.ParamSpec.TYPE_INT, float: pb.ParamSpec.TYPE_DECIMAL, Decimal: pb.ParamSpec.TYPE_DECIMAL,
    str: pb.ParamSpec.TYPE_STRING, bool: pb.ParamSpec.TYPE_BOOL, Duration: pb.ParamSpec.TYPE_DURATION,
}
STATES = {
    "starting": pb.StrategyStatus.STATE_RUNNING, "running": pb.StrategyStatus.STATE_RUNNING,
    "stopped": pb.StrategyStatus.STATE_STOPPED, "failed": pb.StrategyStatus.STATE_FAILED,
}


def status_message(status: dict[str, Any]) -> pb.StrategyStatus:
    return pb.StrategyStatus(
        id=status["id"], kind=status["kind"], params={k: str(v) for k, v in status["params"].items()},
        state=STATES.get(status["state"], pb.StrategyStatus.STATE_UNSPECIFIED), account=status["account"],
        symbols=status["symbols"], position=status["position"], pnl=status["pnl"], error=status["error"],
        started_ns=int(status["started_ns"] or 0), stopped_ns=int(status["stopped_ns"] or 0),
    )


class StrategyService(pb_grpc.StrategyServiceServicer):
    def __init__(self, gate: Gate, host: StrategyHost | None = None) -> None:
        self.gate = gate
        self.host = host

    def _host(self, context: grpc.ServicerContext) -> StrategyHost:
        if self.host is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "live strategies are not enabled in this daemon")
        return self.host

    def ListStrategies(self, request: pb.ListStrategiesRequest, context: grpc.ServicerContext) -> pb.ListStrategiesResponse:
        self.gate.check(context, "read")
        kinds = []
        for name, cls in self._host(context).kinds().items():
            specs = [pb.ParamSpec(name=p, type=PARAM_TYPES.get(spec.type, pb.ParamSpec.TYPE_STRING),
                                  default_value=spec.default_text(), description=spec.description)
                     for p, spec in cls.params.items()]
            kinds.append(pb.StrategyKind(kind=name, description=cls.summary(), params=specs))
        return pb.ListStrategiesResponse(kinds=kinds)

    def ListRunning(self, request: pb.ListRunningRequest, context: grpc.ServicerContext) -> pb.ListRunningResponse:
        self.gate.check(context, "read")
        return pb.ListRunningResponse(strategies=[status_message(s) for s in self._host(context).list()])

    def StartStrategy(self, request: pb.StartStrategyRequest, context: grpc.ServicerContext) -> pb.StartStrategyResponse:
        self.gate.check(context, "admin")
        host = self._host(context)
        try:
            inst = host.start(request.kind, dict(request.params), request.account, list(request.symbols))
        except StrategyRequestError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return pb.StartStrategyResponse(status=status_message(host.status(inst.id)))

    def StopStrategy(self, request: pb.StopStrategyRequest, context: grpc.ServicerContext) -> pb.StopStrategyResponse:
        self.gate.check(context, "admin")
        host = self._host(context)
        try:
            inst = host.stop(request.id)
        except KeyError:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no running strategy {request.id!r}")
        return pb.StopStrategyResponse(status=status_message(host.status(inst.id)))

    def GetStrategyStatus(self, request: pb.GetStrategyStatusRequest, context: grpc.ServicerContext) -> pb.GetStrategyStatusResponse:
        self.gate.check(context, "read")
        try:
            status = self._host(context).status(request.id)
        except KeyError:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no strategy {request.id!r}")
        return pb.GetStrategyStatusResponse(status=status_message(status))
