"""StrategyService: defined by the API now; live strategies arrive with the strategy engine."""

import grpc

from tradsys.daemon.rpc.gate import Gate
from tradsys.proto import strategy_pb2 as pb
from tradsys.proto import strategy_pb2_grpc as pb_grpc

NOT_YET = "live strategies are not available in this version of the daemon"


class StrategyService(pb_grpc.StrategyServiceServicer):
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    def ListStrategies(self, request: pb.ListStrategiesRequest, context: grpc.ServicerContext) -> pb.ListStrategiesResponse:
        self.gate.check(context, "read")
        return pb.ListStrategiesResponse()

    def ListRunning(self, request: pb.ListRunningRequest, context: grpc.ServicerContext) -> pb.ListRunningResponse:
        self.gate.check(context, "read")
        return pb.ListRunningResponse()

    def StartStrategy(self, request: pb.StartStrategyRequest, context: grpc.ServicerContext) -> pb.StartStrategyResponse:
        self.gate.check(context, "admin")
        context.abort(grpc.StatusCode.UNIMPLEMENTED, NOT_YET)

    def StopStrategy(self, request: pb.StopStrategyRequest, context: grpc.ServicerContext) -> pb.StopStrategyResponse:
        self.gate.check(context, "admin")
        context.abort(grpc.StatusCode.UNIMPLEMENTED, NOT_YET)

    def GetStrategyStatus(self, request: pb.GetStrategyStatusRequest, context: grpc.ServicerContext) -> pb.GetStrategyStatusResponse:
        self.gate.check(context, "read")
        context.abort(grpc.StatusCode.NOT_FOUND, f"no strategy {request.id!r}")
