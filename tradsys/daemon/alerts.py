"""Alerting: rules as data, evaluated every second on sampled signals.

A rule compares one signal (optionally one per label set, e.g. per symbol) with a threshold. An
alert instance is a rule plus a label set; it goes pending when the condition first holds,
firing once it has held for the rule's `for` duration, and resolved when it stops holding.
Only transitions are delivered (to the log, the store, the `alerts` hub topic and an optional
webhook), so a condition that stays true is announced once. A pending alert whose condition
clears before its `for` duration is resolved without ever firing.
"""

import json
import logging
import operator
import queue
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tradsys.daemon.logs import log_event
from tradsys.durations import DurationError, parse_seconds
from tradsys.engine import OrderRejected, Venue

log = logging.getLogger("tradsys.alerts")

Labels = tuple[tuple[str, str], ...]
Signals = Mapping[str, Mapping[Labels, float]]
"""signal name -> {label set -> value}; a signal without labels uses the empty label set ()."""

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}
SEVERITIES = ("info", "warning", "critical")


class RuleError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    name: str
    signal: str
    op: str
    threshold: float
    for_seconds: float
    severity: str
    summary: str
    """A format string; it sees `value`, `threshold` and the labels."""
    labels: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise RuleError(f"rule {self.name}: op must be one of {', '.join(OPS)}")
        if self.severity not in SEVERITIES:
            raise RuleError(f"rule {self.name}: severity must be one of {', '.join(SEVERITIES)}")
        if self.for_seconds < 0:
            raise RuleError(f"rule {self.name}: for must not be negative")


BUILTIN_RULES: tuple[Rule, ...] = (
    Rule("market_data_stale", "feed_staleness_seconds", ">", 30, 10, "warning",
         "no trades on {symbol} for {value:.0f}s"),
    Rule("order_reject_rate_high", "order_reject_ratio", ">", 0.5, 60, "warning",
         "{value:.0%} of orders rejected in the last minute"),
    Rule("circuit_breaker_open", "circuit_breaker_open", "==", 1, 0, "critical",
         "circuit breaker tripped on {symbol}"),
    Rule("kill_switch_on", "kill_switch", "==", 1, 0, "critical", "the kill switch is on"),
    Rule("strategy_drawdown", "strategy_drawdown_ratio", ">", 0.2, 0, "warning",
         "strategy {strategy} is {value:.0%} below its peak equity"),
    Rule("strategy_lagging", "strategy_lag_seconds", ">", 5, 10, "warning",
         "strategy {strategy} has not caught up with its events for {value:.0f}s"),
    Rule("order_latency_p99_high", "order_ack_p99_seconds", ">", 0.25, 30, "warning",
         "p99 order acknowledgement latency {value:.3f}s over the last minute"),
    Rule("journal_behind", "journal_lag_seconds", ">", 5, 5, "critical",
         "the engine has not committed queued work for {value:.1f}s"),
)


def parse_duration(value: object) -> float:
    """Seconds from a number or duration text like "30s", "5m", "1h" (see `tradsys.durations`)."""
    try:
        return parse_seconds(value, bare=True)
    except DurationError as exc:
        raise RuleError(str(exc)) from None


def load_rules(spec: Mapping[str, Any] | None) -> list[Rule]:
    """The built-in rules, adjusted by config: `[alerts] rules = [{name=..., ...}]` overrides a
    built-in by name (any field; `enabled = false` turns it off) or adds a new rule."""
    rules = {rule.name: rule for rule in BUILTIN_RULES}
    for item in (spec or {}).get("rules", []):
        if not isinstance(item, Mapping) or "name" not in item:
            raise RuleError("each [[alerts.rules]] needs a name")
        fields = dict(item)
        name = fields.pop("name")
        if "for" in fields:
            fields["for_seconds"] = parse_duration(fields.pop("for"))
        unknown = set(fields) - {"signal", "op", "threshold", "for_seconds", "severity", "summary", "labels", "enabled"}
        if unknown:
            raise RuleError(f"rule {name}: unknown keys {', '.join(sorted(unknown))}")
        if name in rules:
            rules[name] = replace(rules[name], **fields)
        else:
            missing = {"signal", "op", "threshold", "severity"} - set(fields)
            if missing:
                raise RuleError(f"new rule {name}: needs {', '.join(sorted(missing))}")
            fields.setdefault("for_seconds", 0.0)
            fields.setdefault("summary", name)
            rules[name] = Rule(name, **fields)
    return [rule for rule in rules.values() if rule.enabled]


@dataclass
class _Instance:
    state: str = "inactive"
    since_ns: int = 0
    started_ns: int = 0


class AlertRules:
    """The state machine: pure, driven by `evaluate(now, signals)`, returns the transitions."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)
        self._instances: dict[tuple[str, Labels], _Instance] = {}
        self.active: dict[str, dict[str, Any]] = {}
        """Pending and firing alerts by id."""

    def evaluate(self, now_ns: int, signals: Signals) -> list[dict[str, Any]]:
        changes = []
        for rule in self.rules:
            values = signals.get(rule.signal, {})
            seen = set()
            for labels, value in values.items():
                seen.add(labels)
                changes += self._step(rule, labels, value, OPS[rule.op](value, rule.threshold), now_ns)
            for (name, labels), inst in list(self._instances.items()):
                if name == rule.name and labels not in seen and inst.state != "inactive":
                    changes += self._step(rule, labels, None, False, now_ns)
        return changes

    def _step(self, rule: Rule, labels: Labels, value: float | None, holds: bool, now: int) -> list[dict[str, Any]]:
        inst = self._instances.setdefault((rule.name, labels), _Instance())
        if holds:
            if inst.state in ("inactive", "resolved"):
                inst.state, inst.since_ns, inst.started_ns = "pending", now, now
                if rule.for_seconds > 0:
                    return [self._record(rule, labels, value, inst, now)]
            if inst.state == "pending" and now - inst.since_ns >= rule.for_seconds * 1e9:
                inst.state = "firing"
                return [self._record(rule, labels, value, inst, now)]
            return []
        if inst.state in ("pending", "firing"):
            inst.state = "resolved"
            return [self._record(rule, labels, value, inst, now)]
        return []

    def _record(self, rule: Rule, labels: Labels, value: float | None, inst: _Instance, now: int) -> dict[str, Any]:
        label_map = {**rule.labels, **dict(labels)}
        try:
            summary = rule.summary.format(value=value if value is not None else 0.0, threshold=rule.threshold, **label_map)
        except (KeyError, ValueError, IndexError):
            summary = rule.summary
        record = {
            "id": alert_id(rule.name, labels), "rule": rule.name, "severity": rule.severity, "state": inst.state,
            "labels": label_map, "summary": summary, "value": value, "started_ns": inst.started_ns,
            "resolved_ns": now if inst.state == "resolved" else None,
        }
        if inst.state == "resolved":
            self.active.pop(record["id"], None)
        else:
            self.active[record["id"]] = record
        return record


def alert_id(rule: str, labels: Labels) -> str:
    return rule + "".join(f":{k}={v}" for k, v in labels)


class LatencyWindow:
    """Recent order acknowledgement latencies, for a p99 over the last minute."""

    def __init__(self, seconds: float = 60.0, maxlen: int = 20_000) -> None:
        self.seconds = seconds
        self._samples: deque[tuple[float, float]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def add(self, latency: float) -> None:
        with self._lock:
            self._samples.append((time.monotonic(), latency))

    def p99(self) -> float:
        horizon = time.monotonic() - self.seconds
        with self._lock:
            values = sorted(v for t, v in self._samples if t >= horizon)
        return values[int(len(values) * 0.99)] if len(values) >= 20 else 0.0


class RejectWindow:
    """Engine-thread listener: user orders and rejections per second, for a one-minute ratio.

    The simulated market's own orders (accounts starting "sim-") are left out.
    """

    def __init__(self, seconds: int = 60, minimum: int = 20) -> None:
        self.seconds = seconds
        self.minimum = minimum
        self._buckets: deque[list[int]] = deque()
        self._lock = threading.Lock()

    def on_commit(self, batch: list, venue: Venue) -> None:
        second = venue.now // 1_000_000_000
        orders = rejected = 0
        for cmd, events in batch:
            if cmd.get("op") != "new" or str(cmd.get("account", "")).startswith("sim-"):
                continue
            orders += 1
            oid = cmd.get("id")
            for event in events:
                if type(event) is OrderRejected and event.order_id == oid:
                    rejected += 1
                    break
        if not orders:
            return
        with self._lock:
            if not self._buckets or self._buckets[-1][0] != second:
                self._buckets.append([second, 0, 0])
            self._buckets[-1][1] += orders
            self._buckets[-1][2] += rejected

    def ratio(self, now_ns: int) -> float:
        horizon = now_ns // 1_000_000_000 - self.seconds
        with self._lock:
            while self._buckets and self._buckets[0][0] <= horizon:
                self._buckets.popleft()
            orders = sum(b[1] for b in self._buckets)
            rejected = sum(b[2] for b in self._buckets)
        return rejected / orders if orders >= self.minimum else 0.0


class Webhook:
    """POSTs alert transitions as JSON from its own thread, retrying with backoff; never blocks the caller."""

    def __init__(self, url: str, retries: int = 5, timeout: float = 5.0) -> None:
        self.url = url
        self.retries = retries
        self.timeout = timeout
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=1000)
        self._thread = threading.Thread(target=self._run, name="tradsys-webhook", daemon=True)
        self._thread.start()

    def send(self, alert: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            log_event(log, logging.WARNING, "alert.webhook_dropped", id=alert["id"])

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while (alert := self._queue.get()) is not None:
            body = json.dumps(alert).encode()
            for attempt in range(self.retries):
                try:
                    request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
                    with urllib.request.urlopen(request, timeout=self.timeout):
                        break
                except OSError as exc:
                    log_event(log, logging.WARNING, "alert.webhook_failed", id=alert["id"], attempt=attempt + 1,
                              error=str(exc))
                    time.sleep(min(30.0, 0.5 * 2**attempt))


class Alerter:
    """Samples the daemon once a second, evaluates the rules and delivers the transitions."""

    def __init__(self, rules: AlertRules, sample: Callable[[], tuple[int, Signals]],
                 deliver: Iterable[Callable[[dict[str, Any]], None]], interval: float = 1.0) -> None:
        self.rules = rules
        self.sample = sample
        self.deliver = list(deliver)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tradsys-alerts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def tick(self) -> list[dict[str, Any]]:
        now, signals = self.sample()
        changes = self.rules.evaluate(now, signals)
        for alert in changes:
            for deliver in self.deliver:
                try:
                    deliver(alert)
                except Exception:
                    log.exception("alert.delivery_failed")
        return changes

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:
                log.exception("alert.evaluation_failed")


def log_alert(alert: dict[str, Any]) -> None:
    level = {"firing": logging.ERROR if alert["severity"] == "critical" else logging.WARNING}.get(alert["state"], logging.INFO)
    log_event(log, level, f"alert.{alert['state']}", id=alert["id"], severity=alert["severity"], summary=alert["summary"])
