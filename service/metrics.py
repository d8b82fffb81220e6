"""Prometheus metrics, read afresh at every scrape by one collector: the last refresh (outcome, duration),
rows published per table, failing checks, data age per raw table and webhook delivery failures. Nothing
is counted in this process, so every worker and every restart gives the same numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import Any

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from core.raw_contract import RAW_TABLES
from core.settings import RAW_SCHEMA, WarehouseUrl
from core.warehouse import WarehouseBusy, WarehouseMissing
from service.dagster_bridge import DagsterBridge
from service.reader import WarehouseReader

logger = logging.getLogger("spendwise.service")

OPS_SCHEMA = "ops"
WEBHOOK_TABLE = "webhook_deliveries"
# The column that says when a raw row happened: the newest one is how current the raw data is.
RAW_TIME_COLUMNS = {
    name: next(c.name for c in table.columns if c.kind in ("date", "timestamp")) for name, table in RAW_TABLES.items()
}


def _seconds(moment: Any) -> float | None:
    if isinstance(moment, datetime):
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(moment, date):  # a day's data is complete at its end
        return datetime(moment.year, moment.month, moment.day, tzinfo=timezone.utc).timestamp() + 86_400
    return None


class SpendwiseCollector(Collector):
    """`reader` reads the prediction and ops tables (the serving database when one is set); the raw tables
    are read where dbt reads them, `warehouse` (default: the reader's database)."""

    def __init__(self, reader: WarehouseReader, bridge: DagsterBridge, now: datetime | None = None,
                 warehouse: WarehouseUrl | None = None):
        self.reader, self.bridge = reader, bridge
        self.now = now or datetime.now(timezone.utc)
        self.warehouse = warehouse or reader.client.url

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("spendwise_source_up", "1 when the source could be read at this scrape",
                               labels=["source"])
        yield from self._refresh(up)
        yield from self._tables(up)
        yield up

    def _refresh(self, up: GaugeMetricFamily) -> Iterator[Any]:
        try:
            run = self.bridge.latest_refresh()
            status = self.bridge.status(self.now)
        except Exception as exc:  # DagsterUnavailable or worse: the scrape still answers, source down
            logger.warning("metrics: Dagster not read: %s: %s", exc.__class__.__name__, exc)
            up.add_metric(["dagster"], 0)
            return
        up.add_metric(["dagster"], 1)
        running = GaugeMetricFamily("spendwise_refresh_running", "1 while a refresh is queued or running")
        running.add_metric([], 1 if status.refresh_running else 0)
        yield running
        if run is not None:
            info = InfoMetricFamily("spendwise_last_refresh", "the latest refresh run")
            info.add_metric([], {"run_id": run["run_id"], "status": run["status"], "trigger": run["trigger"]})
            yield info
            if run["ended_at"] is not None:
                success = GaugeMetricFamily("spendwise_last_refresh_success",
                                            "1 when the latest finished refresh succeeded, 0 when it failed")
                success.add_metric([], 1 if run["status"] == "SUCCESS" else 0)
                duration = GaugeMetricFamily("spendwise_last_refresh_duration_seconds",
                                             "how long the latest finished refresh ran")
                duration.add_metric([], (run["ended_at"] - run["started_at"]).total_seconds())
                ended = GaugeMetricFamily("spendwise_last_refresh_end_timestamp_seconds",
                                          "when the latest finished refresh ended (Unix time)")
                ended.add_metric([], run["ended_at"].timestamp())
                yield from (success, duration, ended)
        failing = GaugeMetricFamily("spendwise_checks_failed",
                                    "checks whose latest evaluation failed, by severity", labels=["severity"])
        per_check = GaugeMetricFamily("spendwise_check_failed", "1 when the check's latest evaluation failed",
                                      labels=["asset", "check", "severity"])
        counts: dict[str, int] = {"ERROR": 0, "WARN": 0}
        for asset in status.assets:
            for check in asset.checks:
                if check.passed is None:
                    continue
                severity = check.severity or "ERROR"
                per_check.add_metric([asset.asset_key, check.name, severity], 0 if check.passed else 1)
                counts[severity] = counts.get(severity, 0) + (0 if check.passed else 1)
        for severity, count in sorted(counts.items()):
            failing.add_metric([severity], count)
        yield from (failing, per_check)

    def _tables(self, up: GaugeMetricFamily) -> Iterator[Any]:
        try:
            index = self.reader.table_index()
            raw = self._raw_latest()
            webhooks = self._webhook_states()
        except WarehouseBusy as exc:  # a DuckDB refresh holds the file: the next scrape reads it
            logger.info("metrics: warehouse not read: %s", exc.detail)
            up.add_metric(["warehouse"], 0)
            return
        except Exception as exc:
            logger.warning("metrics: warehouse not read: %s: %s", exc.__class__.__name__, exc)
            up.add_metric(["warehouse"], 0)
            return
        up.add_metric(["warehouse"], 1)
        rows = GaugeMetricFamily("spendwise_published_rows", "rows of each published prediction table",
                                 labels=["table"])
        generated = GaugeMetricFamily("spendwise_published_generated_timestamp_seconds",
                                      "when the run that published the table produced it (Unix time)", labels=["table"])
        for name, stats in sorted(index.items()):
            rows.add_metric([name], stats.rows)
            at = _seconds(stats.generated_at)
            if at is not None:
                generated.add_metric([name], at)
        age = GaugeMetricFamily("spendwise_raw_data_age_seconds",
                                "time since the newest row of each raw table (end of its day for daily tables)",
                                labels=["table"])
        for name, latest in sorted(raw.items()):
            at = _seconds(latest)
            if at is not None:
                age.add_metric([name], max(self.now.timestamp() - at, 0.0))
        deliveries = GaugeMetricFamily("spendwise_webhook_deliveries", "webhook deliveries recorded, by state",
                                       labels=["state"])
        for state, count in sorted(webhooks.items()):
            deliveries.add_metric([state], count)
        failures = GaugeMetricFamily("spendwise_webhook_failures",
                                     "webhook deliveries that failed after every attempt (0 without webhooks)")
        failures.add_metric([], webhooks.get("failed", 0))
        yield from (rows, generated, age, deliveries, failures)

    def _existing(self, con, schema: str, reader: WarehouseReader | None = None) -> dict[str, set[str]]:
        client = (reader or self.reader).client
        found: dict[str, set[str]] = {}
        sql = ("SELECT table_name, column_name FROM information_schema.columns "
               f"WHERE table_schema = {client.placeholder}")
        for table, column in client.fetch(con, sql, [schema]):
            found.setdefault(str(table), set()).add(str(column))
        return found

    def _raw_latest(self) -> dict[str, Any]:
        """The newest date or timestamp of each raw table that exists (None when it is empty)."""
        if self.warehouse.kind == "spark":  # the table files: a scrape neither starts a JVM nor takes the metastore
            from core.spark import newest_values

            return newest_values(self.warehouse.spark, RAW_SCHEMA, RAW_TIME_COLUMNS)
        reader = self.reader if self.warehouse == self.reader.client.url else WarehouseReader(self.warehouse)
        client = reader.client
        try:
            with reader.read_connection() as con:
                existing = self._existing(con, RAW_SCHEMA, reader)
                latest = {}
                for table, column in RAW_TIME_COLUMNS.items():
                    if column in existing.get(table, ()):
                        source = f"{client.ident(RAW_SCHEMA)}.{client.ident(table)}"
                        latest[table] = client.fetch(con, f"SELECT max({client.ident(column)}) FROM {source}")[0][0]
        except WarehouseMissing:
            return {}
        return latest

    def _webhook_states(self) -> dict[str, int]:
        """Deliveries per state in ops.webhook_deliveries (core.webhooks); {} when no webhook was ever sent."""
        client = self.reader.client
        try:
            with self.reader.read_connection() as con:
                columns = self._existing(con, OPS_SCHEMA).get(WEBHOOK_TABLE, set())
                state = next((c for c in ("state", "status") if c in columns), None)
                if state is None:
                    return {}
                sql = (f"SELECT CAST({client.ident(state)} AS VARCHAR), count(*) FROM "
                       f"{client.ident(OPS_SCHEMA)}.{client.ident(WEBHOOK_TABLE)} GROUP BY 1")
                return {str(s): int(n) for s, n in client.fetch(con, sql)}
        except WarehouseMissing:
            return {}


def render(reader: WarehouseReader, bridge: DagsterBridge, warehouse: WarehouseUrl | None = None) -> bytes:
    """The Prometheus text exposition of one scrape (a registry made for this scrape only); `warehouse`: where
    the raw tables are, when not in the reader's database (a serving database of its own, Spark)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(SpendwiseCollector(reader, bridge, warehouse=warehouse))
    return generate_latest(registry)
