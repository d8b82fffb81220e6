"""GET /metrics on a live server after a real Dagster run: Prometheus text that the official parser reads,
with the last refresh's outcome and duration, rows per published table, the failing check, raw data age
and webhook failures from the warehouse, each read afresh at every scrape."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.warehouse import WarehouseClient
from core.webhooks import Delivery, DeliveryLog
from service.app import create_app
from tests.service.test_events import refresh_like_job
from tests.service.test_server import LiveServer, settings_for

pytestmark = pytest.mark.slow


def scrape(client: httpx.Client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def write_raw(url: str, newest_day: date, newest_touch: datetime) -> None:
    client = WarehouseClient(url)
    ads = pd.DataFrame({"date": [newest_day - timedelta(days=1), newest_day], "channel": ["search", "search"],
                        "campaign_id": ["c1", "c1"], "impressions": [10, 12], "clicks": [1, 2], "spend": [5.0, 6.0]})
    touches = pd.DataFrame({"touchpoint_id": ["t1", "t2"], "user_id": ["u1", "u2"],
                            "occurred_at": [newest_touch - timedelta(hours=5), newest_touch],
                            "channel": ["search", "email"]})
    with client.write_transaction("raw") as con:
        client.load_frame(con, ads, "raw", "ad_performance_daily")
        client.load_frame(con, touches, "raw", "touchpoints")


def record_delivery(url: str, run_id: str, delivered: bool) -> None:
    log = DeliveryLog(WarehouseClient(url))
    delivery = Delivery(delivery_id=uuid.uuid4().hex, run_id=run_id, url=f"http://hook.invalid/{uuid.uuid4().hex}",
                        target_name="test", event="refresh.finished", attempts=3, delivered=delivered,
                        status_code=200 if delivered else 500)
    assert log.claim(delivery)
    log.finish(delivery)


def test_metrics_report_the_last_run_tables_checks_raw_age_and_webhooks(tmp_path):
    import dagster as dg

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    now = datetime.now(timezone.utc)
    newest_day, newest_touch = (now - timedelta(days=3)).date(), now - timedelta(hours=2)
    with dg.instance_for_test() as instance:
        app = create_app(settings_for(url, tmp_path / "charts", tmp_path / "dh"), dagster_instance=instance)
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            before = scrape(client)  # nothing yet: no file, no run, no webhook table
            assert before[("spendwise_source_up", (("source", "dagster"),))] == 1
            assert before[("spendwise_source_up", (("source", "warehouse"),))] == 1
            assert before[("spendwise_webhook_failures", ())] == 0
            assert not [key for key in before if key[0].startswith(("spendwise_last_refresh", "spendwise_published"))]

            result = refresh_like_job(url, tmp_path / "charts").execute_in_process(instance=instance)
            write_raw(url, newest_day, newest_touch)
            record_delivery(url, result.run_id, delivered=True)
            record_delivery(url, result.run_id, delivered=False)
            metrics = scrape(client)
            record_delivery(url, result.run_id, delivered=False)
            again = scrape(client)

    run = {k[1]: v for k, v in metrics.items() if k[0] == "spendwise_last_refresh_info"}
    assert run == {(("run_id", result.run_id), ("status", "SUCCESS"), ("trigger", "ui")): 1.0}
    assert metrics[("spendwise_last_refresh_success", ())] == 1
    assert 1.0 < metrics[("spendwise_last_refresh_duration_seconds", ())] < 120
    assert abs(metrics[("spendwise_last_refresh_end_timestamp_seconds", ())] - now.timestamp()) < 300
    assert metrics[("spendwise_refresh_running", ())] == 0
    rows = {dict(k[1])["table"]: v for k, v in metrics.items() if k[0] == "spendwise_published_rows"}
    assert rows == {"channel_attribution": 12, "ml_roi_timeseries": 120, "mmm_diagnostics": 3}
    assert metrics[("spendwise_checks_failed", (("severity", "WARN"),))] == 1
    assert metrics[("spendwise_checks_failed", (("severity", "ERROR"),))] == 0
    failing = ("spendwise_check_failed", (("asset", "published_predictions"), ("check", "rows_plausible"),
                                          ("severity", "WARN")))
    assert metrics[failing] == 1
    age = {dict(k[1])["table"]: v for k, v in metrics.items() if k[0] == "spendwise_raw_data_age_seconds"}
    assert set(age) == {"ad_performance_daily", "touchpoints"}  # conversions is not loaded
    day_end = datetime(newest_day.year, newest_day.month, newest_day.day, tzinfo=timezone.utc) + timedelta(days=1)
    assert age["ad_performance_daily"] == pytest.approx((now - day_end).total_seconds(), abs=120)
    assert age["touchpoints"] == pytest.approx(7_200, abs=120)
    assert metrics[("spendwise_webhook_failures", ())] == 1
    assert metrics[("spendwise_webhook_deliveries", (("state", "delivered"),))] == 1
    # Read afresh at each scrape: the third delivery shows at once.
    assert again[("spendwise_webhook_failures", ())] == 2


def test_with_a_serving_database_the_raw_age_is_read_from_the_warehouse(tmp_path, pg_url):
    """The prediction and ops tables in a PostgreSQL serving database, the raw tables where dbt reads them (a
    DuckDB file here): the age gauge comes from the warehouse, the published rows from the serving database."""
    import dagster as dg

    from core.settings import Settings, WarehouseUrl, parse_serving_url

    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    now = datetime.now(timezone.utc)
    write_raw(url, (now - timedelta(days=2)).date(), now - timedelta(hours=3))
    WarehouseClient(pg_url).publish(pd.DataFrame({"channel": ["search"], "share": [1.0]}), "channel_attribution")
    settings = Settings(warehouse=WarehouseUrl.parse(url), charts_dir=tmp_path / "charts",
                        dagster_home=tmp_path / "dh", serving_url=parse_serving_url(pg_url))
    with dg.instance_for_test() as instance:
        with LiveServer(create_app(settings, dagster_instance=instance)) as server, \
                httpx.Client(base_url=server.url, timeout=30) as client:
            metrics = scrape(client)
    assert metrics[("spendwise_source_up", (("source", "warehouse"),))] == 1
    assert metrics[("spendwise_published_rows", (("table", "channel_attribution"),))] == 1
    age = {dict(k[1])["table"]: v for k, v in metrics.items() if k[0] == "spendwise_raw_data_age_seconds"}
    assert set(age) == {"ad_performance_daily", "touchpoints"}
    assert age["touchpoints"] == pytest.approx(10_800, abs=120)
