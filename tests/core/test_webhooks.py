"""Refresh webhooks against real local receivers (http.server on a free port): the signature a receiver
verifies, retries with backoff, a receiver that never answers, deliveries recorded once in
ops.webhook_deliveries on DuckDB and PostgreSQL, and the configuration's errors."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from core import registry
from core.settings import WebhookSettings
from core.warehouse import WarehouseClient
from core.webhooks import (
    DELIVERY_HEADER,
    EVENT_FAILED,
    EVENT_SUCCEEDED,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Delivery,
    DeliveryLog,
    FailedCheck,
    RunReport,
    WebhookConfigError,
    configured_targets,
    notify_refresh,
    redact_url,
    verify_signature,
)

SECRET = "test-secret-3f9a"


class Receiver:
    """A real HTTP receiver in a thread. `script` is the status of each request in turn (the last one
    repeats); "hang" holds the request for `hang_s` seconds without answering. Each request is kept
    with its raw body, headers and whether its signature verified (computed here, not by core.webhooks)."""

    def __init__(self, script=(200,), hang_s: float = 3.0, secret: str = SECRET):
        self.script, self.hang_s, self.secret = list(script), hang_s, secret
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                timestamp = self.headers.get(TIMESTAMP_HEADER, "")
                expected = "sha256=" + hmac.new(receiver.secret.encode(), timestamp.encode() + b"." + body,
                                                hashlib.sha256).hexdigest()
                with receiver._lock:
                    n = len(receiver.requests)
                    receiver.requests.append({
                        "path": self.path, "body": body, "headers": dict(self.headers),
                        "verified": hmac.compare_digest(expected, self.headers.get(SIGNATURE_HEADER, "")),
                        "at": time.monotonic(),
                    })
                status = receiver.script[min(n, len(receiver.script) - 1)]
                if status == "hang":
                    time.sleep(receiver.hang_s)
                    return
                payload = b'{"ok": true}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/spendwise"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]


def webhook_settings(*urls: str, **overrides) -> WebhookSettings:
    options = dict(urls=urls, secret=SECRET, attempts=4, timeout_seconds=2.0, backoff_seconds=0.01,
                   deadline_seconds=10.0, public_url="https://spendwise.example.com")
    return WebhookSettings(**{**options, **overrides})


def report(run_id: str, succeeded: bool = True, **fields) -> RunReport:
    finished = datetime(2026, 11, 30, 7, 0, 30, tzinfo=timezone.utc)
    return RunReport(run_id=run_id, succeeded=succeeded, started_at=finished - timedelta(seconds=90),
                     finished_at=finished, trigger="cli", **fields)


def publish_two_tables(url: str, run_id: str) -> None:
    """mmm_channel_roas written by `run_id` (3 rows), ml_roi_forecast kept from an earlier run (2 rows)."""
    client = WarehouseClient(url)
    client.publish(pd.DataFrame({"channel": ["a", "b", "c"], "roas": [1.0, 2.0, 3.0]}), "mmm_channel_roas",
                   run_id=run_id)
    client.publish(pd.DataFrame({"channel": ["a", "b"]}), "ml_roi_forecast", run_id="an-earlier-run")


# --------------------------------------------------------------------------------------- delivery


def test_a_verifying_receiver_gets_the_signed_event_once_and_the_delivery_is_recorded(duckdb_url, caplog):
    publish_two_tables(duckdb_url, "run-1")
    client = WarehouseClient(duckdb_url)
    failed = FailedCheck(asset="raw/touchpoints", name="touchpoints_volume_and_freshness", severity="WARN",
                         blocking=True, stops_the_run=False, words="raw.touchpoints: newest day 28 days old")
    with Receiver() as receiver, caplog.at_level(logging.INFO, logger="spendwise.webhooks"):
        # credentials and a query token in the URL: sent to the receiver, never recorded or logged
        secret_url = receiver.url.replace("http://", "http://hookuser:hookpass@") + "?token=q-secret-77"
        deliveries = notify_refresh(report("run-1", failed_checks=(failed,)), client, webhook_settings(secret_url))
        again = notify_refresh(report("run-1"), client, webhook_settings(secret_url))

    assert len(receiver.requests) == 1 and again == []  # the second notifier of run-1 sent nothing
    request = receiver.requests[0]
    assert request["verified"] and request["path"] == "/hooks/spendwise?token=q-secret-77"
    assert request["headers"]["Authorization"].startswith("Basic ")  # user:password became basic auth
    assert verify_signature(SECRET, request["headers"][TIMESTAMP_HEADER], request["body"],
                            request["headers"][SIGNATURE_HEADER])
    assert not verify_signature("another-secret", request["headers"][TIMESTAMP_HEADER], request["body"],
                                request["headers"][SIGNATURE_HEADER])
    assert not verify_signature(SECRET, request["headers"][TIMESTAMP_HEADER], request["body"] + b" ",
                                request["headers"][SIGNATURE_HEADER])
    stale = str(int(request["headers"][TIMESTAMP_HEADER]) - 3600)  # an old event replayed: refused
    assert not verify_signature(SECRET, stale, request["body"], "sha256=" + hmac.new(
        SECRET.encode(), stale.encode() + b"." + request["body"], hashlib.sha256).hexdigest())

    event = json.loads(request["body"])
    assert event["event"] == EVENT_SUCCEEDED and event["status"] == "succeeded" and event["run_id"] == "run-1"
    assert (event["started_at"], event["finished_at"]) == ("2026-11-30T06:59:00Z", "2026-11-30T07:00:30Z")
    assert event["duration_seconds"] == 90.0
    assert sorted(event["tables"], key=lambda t: t["name"]) == [  # (in registry order)
        {"name": "ml_roi_forecast", "rows": 2, "refreshed_by_this_run": False, "schema": "predictions",
         "url": "https://spendwise.example.com/data/ml_roi_forecast"},
        {"name": "mmm_channel_roas", "rows": 3, "refreshed_by_this_run": True, "schema": "predictions",
         "url": "https://spendwise.example.com/data/mmm_channel_roas"},
    ]
    assert [c["url"] for c in event["charts"]] == [
        f"https://spendwise.example.com/charts/{name}.png" for name in registry.CHARTS]
    assert event["failed_checks"] == [{"asset": "raw/touchpoints", "name": "touchpoints_volume_and_freshness",
                                       "severity": "WARN", "blocking": True, "stops_the_run": False,
                                       "words": "raw.touchpoints: newest day 28 days old"}]
    assert event["links"]["status"] == "https://spendwise.example.com/status"

    [row] = DeliveryLog(client).rows("run-1")
    assert row["delivery_id"] == request["headers"][DELIVERY_HEADER] == deliveries[0].delivery_id
    assert row["url"] == receiver.url  # user, password and query stripped
    assert (row["status_code"], row["attempts"], row["delivered"], row["state"]) == (200, 1, True, "delivered")
    assert row["event"] == EVENT_SUCCEEDED and row["error"] is None and row["latency_ms"] > 0
    assert abs(row["attempted_at"] - datetime.now(timezone.utc).replace(tzinfo=None)) < timedelta(minutes=1)
    assert "hookpass" not in caplog.text and "q-secret-77" not in caplog.text and SECRET not in caplog.text
    assert "delivered (HTTP 200)" in caplog.text


def _fails_twice_then_succeeds(url: str) -> None:
    client = WarehouseClient(url)
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        time.sleep(seconds)

    with Receiver(script=(500, 503, 200)) as receiver:
        [delivery] = notify_refresh(report("run-2", succeeded=False, failed_steps=("spendwise_dbt_models",)),
                                    client, webhook_settings(receiver.url), sleep=sleep)
    assert len(receiver.requests) == 3 and all(r["verified"] for r in receiver.requests)
    assert pauses == [0.01, 0.02]  # exponential backoff between the attempts
    # the same event each time (one body, one delivery id), each attempt signed afresh
    assert len({r["body"] for r in receiver.requests}) == 1
    assert len({r["headers"][DELIVERY_HEADER] for r in receiver.requests}) == 1
    event = receiver.events()[0]
    assert event["event"] == EVENT_FAILED and event["failed_steps"] == ["spendwise_dbt_models"]
    assert event["tables"] == []  # nothing published in this warehouse (DuckDB: no file yet, said in tables_note)
    assert delivery.delivered and delivery.attempts == 3
    [row] = DeliveryLog(client).rows("run-2")
    assert (row["status_code"], row["attempts"], row["delivered"], row["state"], row["error"]) == (
        200, 3, True, "delivered", None)
    assert row["elapsed_ms"] >= row["latency_ms"] > 0


def test_a_receiver_failing_twice_then_answering_gets_the_event_on_the_third_attempt_duckdb(duckdb_url):
    _fails_twice_then_succeeds(duckdb_url)


def test_a_receiver_failing_twice_then_answering_gets_the_event_on_the_third_attempt_postgres(pg_url):
    _fails_twice_then_succeeds(pg_url)


def test_deliveries_are_recorded_once_per_run_url_and_event_on_postgres(pg_url):
    publish_two_tables(pg_url, "run-3")
    client = WarehouseClient(pg_url)
    with Receiver() as first, Receiver(script=(404,)) as refusing:
        settings = webhook_settings(first.url, refusing.url)
        done = notify_refresh(report("run-3"), client, settings)
        assert notify_refresh(report("run-3"), client, settings) == []
        failed_event = notify_refresh(report("run-3", succeeded=False), client, settings)  # another event: sent
    assert len(done) == 2 and len(failed_event) == 2
    assert [e["event"] for e in first.events()] == [EVENT_SUCCEEDED, EVENT_FAILED]
    assert {t["name"]: t for t in first.events()[0]["tables"]}["mmm_channel_roas"] == {
        "name": "mmm_channel_roas", "rows": 3, "refreshed_by_this_run": True, "schema": "predictions",
        "url": "https://spendwise.example.com/data/mmm_channel_roas"}
    assert len(refusing.requests) == 2  # a 404 is not retried
    rows = DeliveryLog(client).rows("run-3")
    assert len(rows) == 4
    refused = [r for r in rows if r["url"] == refusing.url]
    assert {(r["status_code"], r["attempts"], r["delivered"], r["state"]) for r in refused} == {(404, 1, False, "failed")}
    assert all("not retried" in r["error"] for r in refused)
    with client.connect(read_only=True) as con:
        types = dict(client.fetch(con, "SELECT column_name, data_type FROM information_schema.columns "
                                       "WHERE table_schema = 'ops' AND table_name = 'webhook_deliveries'"))
    assert types["delivered"] == "boolean" and types["attempted_at"].startswith("timestamp")


def test_a_receiver_that_never_answers_is_recorded_as_failed_within_the_bounds(duckdb_url):
    client = WarehouseClient(duckdb_url)
    with Receiver(script=("hang",), hang_s=2.0) as silent, Receiver() as answering:
        started = time.monotonic()
        deliveries = notify_refresh(report("run-4", succeeded=False), client,
                                    webhook_settings(silent.url, answering.url, attempts=3, timeout_seconds=0.3))
        took = time.monotonic() - started
    by_url = {d.url: d for d in deliveries}
    assert not by_url[silent.url].delivered and by_url[silent.url].attempts == 3
    assert "no answer within 0.3 s" in by_url[silent.url].error
    assert len(silent.requests) == 3
    assert by_url[answering.url].delivered and len(answering.requests) == 1  # the other URL is not held up
    assert took < 3.0  # 3 x 0.3 s timeouts + backoff, not the 2 s the receiver hangs each time
    rows = {r["url"]: r for r in DeliveryLog(client).rows("run-4")}
    assert (rows[silent.url]["delivered"], rows[silent.url]["attempts"], rows[silent.url]["state"],
            rows[silent.url]["status_code"]) == (False, 3, "failed", None)
    assert rows[answering.url]["delivered"]


def test_the_deadline_bounds_the_whole_delivery(duckdb_url):
    client = WarehouseClient(duckdb_url)
    with Receiver(script=("hang",), hang_s=5.0) as silent:
        started = time.monotonic()
        [delivery] = notify_refresh(report("run-5"), client, webhook_settings(
            silent.url, attempts=10, timeout_seconds=5.0, backoff_seconds=0.2, deadline_seconds=1.0))
        took = time.monotonic() - started
    assert took < 2.5 and not delivery.delivered
    assert delivery.attempts == 1 and "gave up" in delivery.error


def test_a_broken_warehouse_or_configuration_never_raises(tmp_path, caplog):
    with Receiver() as receiver:
        # the warehouse cannot record: the event still goes out, without row counts
        broken = WarehouseClient("postgresql://nobody:pw@127.0.0.1:1/none")
        [delivery] = notify_refresh(report("run-6", succeeded=False), broken, webhook_settings(receiver.url))
        assert delivery.delivered and not delivery.recorded
        assert receiver.events()[0]["tables_note"].startswith("row counts unavailable")
        assert "pw@" not in caplog.text
        # a wrong config file: nothing sent, the reason logged, no exception
        bad = tmp_path / "hooks.yaml"
        bad.write_text("- url: ftp://files.example.com/x\n")
        with caplog.at_level(logging.ERROR, logger="spendwise.webhooks"):
            assert notify_refresh(report("run-7"), broken, webhook_settings(config_file=bad)) == []
        assert f"{bad}, webhook 1" in caplog.text and len(receiver.requests) == 1


# --------------------------------------------------------------------------------------- configuration


def test_targets_come_from_the_variable_and_the_config_file(tmp_path, duckdb_url):
    config = tmp_path / "webhooks.yaml"
    config.write_text(
        "webhooks:\n"
        "  - url: https://hooks.example.com/spendwise\n    name: ops chat\n    events: [refresh.failed]\n"
        "  - https://bi.example.com/refreshed\n"
    )
    settings = WebhookSettings.from_env({
        "SPENDWISE_WEBHOOK_URLS": " https://a.example.com/x , https://b.example.com/y?key=1 ",
        "SPENDWISE_WEBHOOK_CONFIG": str(config), "SPENDWISE_WEBHOOK_SECRET": "never-shown-91c2",
        "SPENDWISE_WEBHOOK_ATTEMPTS": "2", "SPENDWISE_PUBLIC_URL": "https://sw.example.com/",
    })
    assert (settings.attempts, settings.timeout_seconds, settings.deadline_seconds) == (2, 5.0, 30.0)
    assert settings.public_url == "https://sw.example.com" and settings.secret == "never-shown-91c2"
    assert "never-shown-91c2" not in repr(settings)  # the settings object can be logged whole
    targets = configured_targets(settings)
    assert [(t.redacted_url, t.name, t.events) for t in targets] == [
        ("https://a.example.com/x", "a.example.com", (EVENT_SUCCEEDED, EVENT_FAILED)),
        ("https://b.example.com/y", "b.example.com", (EVENT_SUCCEEDED, EVENT_FAILED)),
        ("https://hooks.example.com/spendwise", "ops chat", (EVENT_FAILED,)),
        ("https://bi.example.com/refreshed", "bi.example.com", (EVENT_SUCCEEDED, EVENT_FAILED)),
    ]
    as_json = tmp_path / "webhooks.json"
    as_json.write_text(json.dumps([{"url": "http://127.0.0.1:9/x", "events": ["refresh.succeeded"]}]))
    assert configured_targets(webhook_settings(config_file=as_json))[0].events == (EVENT_SUCCEEDED,)

    # a URL that only wants failures gets nothing on success
    with Receiver() as receiver:
        only_failures = tmp_path / "failures.yaml"
        only_failures.write_text(f"- url: {receiver.url}\n  events: [refresh.failed]\n")
        assert notify_refresh(report("run-8"), WarehouseClient(duckdb_url),
                              webhook_settings(config_file=only_failures)) == []
        assert notify_refresh(report("run-8", succeeded=False), WarehouseClient(duckdb_url),
                              webhook_settings(config_file=only_failures))[0].delivered
    assert [e["event"] for e in receiver.events()] == [EVENT_FAILED]


@pytest.mark.parametrize("content, message", [
    ("- url: ftp://x.example.com/a\n", "webhook 1: 'ftp://x.example.com/a' is not an http(s) URL"),
    ("- name: no url\n", "webhook 1: `url` is missing or empty"),
    ("- url: https://x.example.com/a\n  events: [refresh.started]\n", "unknown events ['refresh.started']"),
    ("- url: https://x.example.com/a\n  secret: nope\n", "unknown keys ['secret']"),
    ("url: https://x.example.com/a\n", "expected a list of webhooks"),
    ("- url: https://u:p@x.example.com/a\n- url: https://x.example.com/a?t=2\n",
     "hooks.yml, webhook 2 both go to https://x.example.com/a"),
    ("- [unclosed\n", "not valid YAML"),
])
def test_a_wrong_config_file_is_named_with_the_entry(tmp_path, content, message):
    config = tmp_path / "hooks.yml"
    config.write_text(content)
    with pytest.raises(WebhookConfigError) as error:
        configured_targets(webhook_settings(config_file=config))
    assert message in str(error.value) and str(config) in str(error.value)
    assert "u:p@" not in str(error.value)


@pytest.mark.parametrize("env, message", [
    ({"SPENDWISE_WEBHOOK_URLS": "https://x.example.com/a"}, "SPENDWISE_WEBHOOK_SECRET is not set"),
    ({"SPENDWISE_WEBHOOK_ATTEMPTS": "0"}, "SPENDWISE_WEBHOOK_ATTEMPTS='0' is not a whole number above 0"),
    ({"SPENDWISE_WEBHOOK_TIMEOUT_SECONDS": "soon"}, "SPENDWISE_WEBHOOK_TIMEOUT_SECONDS='soon' is not a number"),
    ({"SPENDWISE_WEBHOOK_DEADLINE_SECONDS": "inf"}, "SPENDWISE_WEBHOOK_DEADLINE_SECONDS='inf'"),
    ({"SPENDWISE_PUBLIC_URL": "spendwise.example.com"}, "SPENDWISE_PUBLIC_URL='spendwise.example.com' is not"),
])
def test_wrong_settings_name_the_variable(env, message):
    with pytest.raises(ValueError, match=None) as error:
        WebhookSettings.from_env(env)
    assert message in str(error.value)


def test_redacted_urls_keep_scheme_host_port_and_path():
    assert redact_url("https://user:pw@hooks.example.com:8443/a/b?token=x#frag") == "https://hooks.example.com:8443/a/b"
    assert redact_url("http://[::1]:9000/h?k=v") == "http://[::1]:9000/h"
    assert WebhookSettings.from_env({}).configured is False


def test_a_delivery_left_sending_by_a_dead_notifier_is_taken_over_a_live_one_is_not(duckdb_url):
    client = WarehouseClient(duckdb_url)
    store = DeliveryLog(client)
    with Receiver() as receiver:
        settings = webhook_settings(receiver.url, deadline_seconds=5.0)
        # a notifier claimed run-9 an hour ago and died before sending; another is sending run-10 now
        for run_id, age in (("run-9", timedelta(hours=1)), ("run-10", timedelta(seconds=1))):
            claimed = Delivery(delivery_id=f"claimed-{run_id}", run_id=run_id, url=receiver.url,
                               target_name="x", event=EVENT_SUCCEEDED,
                               attempted_at=datetime.now(timezone.utc) - age)
            assert store.claim(claimed)
        [taken_over] = notify_refresh(report("run-9"), client, settings)
        assert notify_refresh(report("run-10"), client, settings) == []
    assert taken_over.delivered and taken_over.delivery_id == "claimed-run-9"
    assert [r["headers"][DELIVERY_HEADER] for r in receiver.requests] == ["claimed-run-9"]
    assert sorted((r["run_id"], r["state"]) for r in store.rows()) == [("run-10", "sending"), ("run-9", "delivered")]


def test_a_redirect_is_not_followed_nor_retried(duckdb_url):
    with Receiver(script=(307,)) as moved:
        [delivery] = notify_refresh(report("run-11"), WarehouseClient(duckdb_url), webhook_settings(moved.url))
    assert (delivery.delivered, delivery.attempts, delivery.status_code, len(moved.requests)) == (False, 1, 307, 1)
    assert "redirects are not followed, configure the final URL" in delivery.error
