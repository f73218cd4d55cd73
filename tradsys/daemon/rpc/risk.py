"""RiskService: limits as data, dry-run validation, halts, circuit breakers and the kill switch."""

from typing import Any

import grpc

from tradsys.daemon.core import Core, Unavailable
from tradsys.daemon.rpc.convert import BadRequest, place_command
from tradsys.daemon.rpc.gate import Gate, default_account, refuse, unavailable_status
from tradsys.engine import Rejected, Venue
from tradsys.engine.commands import build_order, fmt
from tradsys.proto import risk_pb2 as pb
from tradsys.proto import risk_pb2_grpc as pb_grpc


def symbol_state(venue: Venue, symbol: str) -> pb.SymbolRiskState:
    breaker = venue.breakers[symbol]
    tripped = breaker.is_open(venue.now)
    return pb.SymbolRiskState(
        symbol=symbol,
        halted=symbol in venue.halted,
        halt_reason=venue.halted.get(symbol, ""),
        circuit_breaker=pb.CircuitBreaker(
            state=pb.CircuitBreaker.STATE_TRIPPED if tripped else pb.CircuitBreaker.STATE_ARMED,
            tripped_ns=breaker.tripped_ns, resumes_ns=breaker.halted_until if tripped else 0,
            reason=breaker.reason if tripped else "",
        ),
    )


def kill_state(venue: Venue) -> pb.KillSwitch:
    return pb.KillSwitch(on=venue.kill_switch, reason=venue.kill_reason, changed_ns=venue.kill_changed_ns)


class RiskService(pb_grpc.RiskServiceServicer):
    def __init__(self, core: Core, gate: Gate) -> None:
        self.core = core
        self.gate = gate

    def _command(self, context: grpc.ServicerContext, commands: list[dict[str, Any]], render: Any) -> Any:
        try:
            return self.core.execute(commands, render)
        except Unavailable as exc:
            context.abort(unavailable_status(exc), str(exc))

    def GetLimits(self, request: pb.GetLimitsRequest, context: grpc.ServicerContext) -> pb.GetLimitsResponse:
        principal = self.gate.check(context, "read", request.account or None)

        def build(venue: Venue) -> list[pb.RiskLimit]:
            return [
                pb.RiskLimit(key=k, value="none" if v is None else fmt(v), account=a or "", symbol=s or "")
                for a, s, k, v in venue.limits.entries()
                if (a is None or principal.covers(a)) and (not request.account or a in (None, request.account))
                and (not request.symbol or s in (None, request.symbol))
            ]

        return pb.GetLimitsResponse(limits=self.core.query(build))

    def SetLimits(self, request: pb.SetLimitsRequest, context: grpc.ServicerContext) -> pb.SetLimitsResponse:
        self.gate.check(context, "admin")
        if not request.limits:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no limits given")
        commands = []
        for limit in request.limits:
            cmd: dict[str, Any] = {"op": "limit", "key": limit.key, "value": limit.value or "none"}
            if limit.account:
                cmd["account"] = limit.account
            if limit.symbol:
                cmd["symbol"] = limit.symbol
            commands.append(cmd)

        def render(cmds: list[dict[str, Any]], results: list[Any], venue: Venue) -> Any:
            for cmd, result in zip(cmds, results):
                if isinstance(result, Exception):
                    return result
            return [
                pb.RiskLimit(key=c["key"], value=_limit_text(venue.limits.get(c["key"], c.get("account"), c.get("symbol"))),
                             account=c.get("account", ""), symbol=c.get("symbol", ""))
                for c in cmds
            ]

        result = self._command(context, commands, render)
        if isinstance(result, Exception):
            refuse(context, getattr(result, "reason", "invalid_limit"), getattr(result, "message", str(result)))
        return pb.SetLimitsResponse(limits=result)

    def ValidateOrder(self, request: pb.ValidateOrderRequest, context: grpc.ServicerContext) -> pb.ValidateOrderResponse:
        principal = self.gate.authenticate(context)
        account = default_account(context, principal, request.order.account)
        self.gate.authorize(context, principal, "read", account)
        try:
            cmd = place_command(request.order, account)
        except BadRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        cmd["id"] = "validate"

        def check(venue: Venue) -> list[str]:
            try:
                venue.check(build_order(venue, cmd))
            except Rejected as rej:
                return [f"{rej.reason}: {rej.message}" if rej.message else rej.reason]
            return []

        reasons = self.core.query(check)
        return pb.ValidateOrderResponse(ok=not reasons, reasons=reasons)

    def Halt(self, request: pb.HaltRequest, context: grpc.ServicerContext) -> pb.HaltResponse:
        self.gate.check(context, "admin")
        state = self._symbol_command(context, {"op": "halt", "symbol": request.symbol, "reason": request.reason or "manual"})
        return pb.HaltResponse(state=state)

    def Resume(self, request: pb.ResumeRequest, context: grpc.ServicerContext) -> pb.ResumeResponse:
        self.gate.check(context, "admin")
        return pb.ResumeResponse(state=self._symbol_command(context, {"op": "resume", "symbol": request.symbol}))

    def _symbol_command(self, context: grpc.ServicerContext, cmd: dict[str, Any]) -> pb.SymbolRiskState:
        def render(cmds: list[dict[str, Any]], results: list[Any], venue: Venue) -> Any:
            return results[0] if isinstance(results[0], Exception) else symbol_state(venue, cmd["symbol"])

        result = self._command(context, [cmd], render)
        if isinstance(result, Exception):
            refuse(context, getattr(result, "reason", "invalid_argument"), getattr(result, "message", str(result)))
        return result

    def SetKillSwitch(self, request: pb.SetKillSwitchRequest, context: grpc.ServicerContext) -> pb.SetKillSwitchResponse:
        self.gate.check(context, "admin")
        cmd = {"op": "kill", "on": request.on, "reason": request.reason or "manual"}
        state = self._command(context, [cmd], lambda _c, _r, venue: kill_state(venue))
        return pb.SetKillSwitchResponse(kill_switch=state)

    def GetRiskState(self, request: pb.GetRiskStateRequest, context: grpc.ServicerContext) -> pb.GetRiskStateResponse:
        self.gate.check(context, "read")

        def build(venue: Venue) -> pb.GetRiskStateResponse:
            return pb.GetRiskStateResponse(
                kill_switch=kill_state(venue), symbols=[symbol_state(venue, s) for s in venue.instruments]
            )

        return self.core.query(build)


def _limit_text(value: Any) -> str:
    return "none" if value is None else fmt(value)
