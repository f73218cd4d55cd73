"""Risk limits, strategy instances and alerts: low-volume tables, read and written from any
thread (SQLite serialises the writers)."""

from __future__ import annotations

from decimal import Decimal

import peewee as pw

from tradsys.daemon.store.codec import dumps, loads


class Settings:
    def __init__(self, models: dict[str, type[pw.Model]]) -> None:
        self._limits = models["risk_limits"]
        self._strategies = models["strategies"]
        self._alerts = models["alerts"]

    # -- risk limits -----------------------------------------------------------------------------

    def set_risk_limit(self, key: str, value: Decimal | str | None, account: str | None = None,
                       symbol: str | None = None, updated_ns: int = 0) -> None:
        """Upsert one limit at a scope; value None = no limit."""
        text = None if value is None else str(value)
        self._limits.insert(account=account or "", symbol=symbol or "", key=key, value=text,
                            updated_ns=updated_ns).on_conflict_replace().execute()

    def delete_risk_limit(self, key: str, account: str | None = None, symbol: str | None = None) -> bool:
        model = self._limits
        return bool(model.delete().where((model.account == (account or "")) & (model.symbol == (symbol or ""))
                                         & (model.key == key)).execute())

    def list_risk_limits(self) -> list[dict]:
        """Every stored limit, globals first: {account, symbol (None = any), key, value, updated_ns}."""
        model = self._limits
        out = []
        for row in model.select().order_by(model.account, model.symbol, model.key).dicts():
            row["account"] = row["account"] or None
            row["symbol"] = row["symbol"] or None
            out.append(row)
        return out

    # -- strategies ------------------------------------------------------------------------------

    def upsert_strategy(self, id: str, kind: str, params: dict, state: str, account: str | None = None,
                        ts: int = 0) -> None:
        """Create or update a strategy; created_ns is kept from the first insert."""
        model = self._strategies
        model.insert(id=id, kind=kind, params=dumps(params), account=account, state=state, created_ns=ts,
                     updated_ns=ts).on_conflict(
            conflict_target=[model.id],
            preserve=[model.kind, model.params, model.account, model.state, model.updated_ns],
        ).execute()

    def get_strategy(self, id: str) -> dict | None:
        model = self._strategies
        row = model.select().where(model.id == id).dicts().first()
        return None if row is None else _decoded(row, "params")

    def list_strategies(self, account: str | None = None, state: str | None = None) -> list[dict]:
        model = self._strategies
        query = model.select().order_by(model.created_ns, model.id)
        if account is not None:
            query = query.where(model.account == account)
        if state is not None:
            query = query.where(model.state == state)
        return [_decoded(row, "params") for row in query.dicts()]

    def delete_strategy(self, id: str) -> bool:
        model = self._strategies
        return bool(model.delete().where(model.id == id).execute())

    # -- alerts ----------------------------------------------------------------------------------

    def upsert_alert(self, id: str, rule: str, severity: str, state: str, started_ns: int,
                     labels: dict | None = None, summary: str = "", resolved_ns: int | None = None,
                     acked: bool | None = None) -> None:
        """Create or update an alert; `acked` None keeps the stored flag (False for a new alert)."""
        model = self._alerts
        preserve = [model.rule, model.severity, model.state, model.labels, model.summary, model.started_ns,
                    model.resolved_ns]
        if acked is not None:
            preserve.append(model.acked)
        model.insert(id=id, rule=rule, severity=severity, state=state, labels=dumps(labels or {}),
                     summary=summary, started_ns=started_ns, resolved_ns=resolved_ns,
                     acked=bool(acked)).on_conflict(conflict_target=[model.id], preserve=preserve).execute()

    def ack_alert(self, id: str, acked: bool = True) -> bool:
        model = self._alerts
        return bool(model.update(acked=acked).where(model.id == id).execute())

    def list_alerts(self, state: str | None = None, limit: int = 100) -> list[dict]:
        """Alerts, newest first."""
        model = self._alerts
        query = model.select().order_by(model.started_ns.desc(), model.id.desc()).limit(limit)
        if state is not None:
            query = query.where(model.state == state)
        return [_decoded(row, "labels") for row in query.dicts()]


def _decoded(row: dict, key: str) -> dict:
    row[key] = loads(row[key])
    return row
