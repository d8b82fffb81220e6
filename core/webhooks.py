"""Webhooks: a signed JSON event to every configured URL when a refresh succeeds or fails, retried with
backoff, each delivery recorded in `ops.webhook_deliveries`. Dagster-free: callers hand in a RunReport.

What is signed: the bytes `<X-Spendwise-Timestamp value>.<raw body>`, with HMAC-SHA256 and the shared
secret (SPENDWISE_WEBHOOK_SECRET); `verify_signature` is what a receiver does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from core.settings import PREDICTIONS_SCHEMA, WEBHOOK_CONFIG_ENV, WEBHOOK_URLS_ENV, WebhookSettings

log = logging.getLogger("spendwise.webhooks")

EVENT_SUCCEEDED = "refresh.succeeded"
EVENT_FAILED = "refresh.failed"
EVENTS = (EVENT_SUCCEEDED, EVENT_FAILED)

SIGNATURE_HEADER = "X-Spendwise-Signature"
TIMESTAMP_HEADER = "X-Spendwise-Timestamp"
EVENT_HEADER = "X-Spendwise-Event"
DELIVERY_HEADER = "X-Spendwise-Delivery"
SIGNATURE_TOLERANCE_SECONDS = 300  # a receiver refuses events signed longer ago than this (replays)

OPS_SCHEMA = "ops"
DELIVERIES_TABLE = "webhook_deliveries"
# Statuses worth another attempt: the receiver is down, overloaded or timed out; any other 4xx will not change.
_RETRY_STATUSES = {408, 425, 429}


class WebhookConfigError(ValueError):
    """The webhook configuration (SPENDWISE_WEBHOOK_URLS or the config file) is wrong; says where."""


# ------------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class WebhookTarget:
    url: str = field(repr=False)  # may carry credentials (user:password@, ?token=): never logged
    name: str
    events: tuple[str, ...] = EVENTS

    @property
    def redacted_url(self) -> str:
        return redact_url(self.url)


def redact_url(url: str) -> str:
    """`url` without user, password, query or fragment: what logs and ops.webhook_deliveries show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _target(url: str, where: str, name: str | None = None, events=None) -> WebhookTarget:
    if not isinstance(url, str) or not url.strip():
        raise WebhookConfigError(f"{where}: `url` is missing or empty")
    url = url.strip()
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError as exc:
        raise WebhookConfigError(f"{where}: {redact_url(url)!r} has a bad port ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookConfigError(f"{where}: {redact_url(url)!r} is not an http(s) URL such as https://hooks.example.com/spendwise")
    if events is None:
        chosen = EVENTS
    else:
        if isinstance(events, str):
            events = [events]
        if not isinstance(events, list) or not events:
            raise WebhookConfigError(f"{where}: `events` must be a list of {', '.join(EVENTS)}")
        unknown = [e for e in events if e not in EVENTS]
        if unknown:
            raise WebhookConfigError(f"{where}: unknown events {unknown}; known: {', '.join(EVENTS)}")
        chosen = tuple(e for e in EVENTS if e in events)
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise WebhookConfigError(f"{where}: `name` must be non-empty text")
    return WebhookTarget(url=url, name=(name or parts.hostname).strip(), events=chosen)


def _read_config_file(path: Path) -> list[tuple[str, WebhookTarget]]:
    if not path.is_file():
        raise WebhookConfigError(f"{WEBHOOK_CONFIG_ENV}: no file at {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise WebhookConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
                                 f"{' '.join(str(exc).split())[:300]}") from None
    entries = data.get("webhooks") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise WebhookConfigError(f"{path}: expected a list of webhooks (or a mapping with a `webhooks:` list), "
                                 "each with `url` and optional `name` and `events`")
    targets = []
    for i, entry in enumerate(entries, start=1):
        where = f"{path}, webhook {i}"
        if isinstance(entry, str):
            entry = {"url": entry}
        if not isinstance(entry, dict):
            raise WebhookConfigError(f"{where}: expected a mapping with `url`, got {type(entry).__name__}")
        extra = set(entry) - {"url", "name", "events"}
        if extra:
            raise WebhookConfigError(f"{where}: unknown keys {sorted(extra)}; allowed: url, name, events")
        targets.append((where, _target(entry.get("url"), where, entry.get("name"), entry.get("events"))))
    return targets


def configured_targets(settings: WebhookSettings) -> list[WebhookTarget]:
    """The URLs of SPENDWISE_WEBHOOK_URLS, then those of the config file; WebhookConfigError says where
    one is wrong. Two entries with the same URL once credentials and query are stripped are refused:
    deliveries are told apart (and never repeated) by that URL."""
    targets = []
    for i, url in enumerate(settings.urls, start=1):
        where = f"{WEBHOOK_URLS_ENV} entry {i}"
        targets.append((where, _target(url, where)))
    if settings.config_file is not None:
        targets += _read_config_file(settings.config_file)
    seen: dict[str, str] = {}
    for where, t in targets:
        if t.redacted_url in seen:
            raise WebhookConfigError(f"{seen[t.redacted_url]} and {where} both go to {t.redacted_url}: "
                                     "list each receiver once")
        seen[t.redacted_url] = where
    return [t for _, t in targets]


# ------------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class FailedCheck:
    asset: str
    name: str
    severity: str
    blocking: bool
    stops_the_run: bool
    words: str


@dataclass(frozen=True)
class RunReport:
    """One finished refresh run, as the orchestration layer summarised it."""

    run_id: str
    succeeded: bool
    started_at: datetime
    finished_at: datetime
    trigger: str = "cli"
    failed_checks: tuple[FailedCheck, ...] = ()
    failed_steps: tuple[str, ...] = ()
    error: str | None = None  # the run could not be summarised (an exception): its one-line reason

    @property
    def event(self) -> str:
        return EVENT_SUCCEEDED if self.succeeded else EVENT_FAILED


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def table_rows(client, run_id: str) -> tuple[list[dict], str | None]:
    """Every registered prediction table that exists: its rows and whether run `run_id` wrote them
    (a publication replaces a table whole, so its rows carry one run id). Never raises: a warehouse
    that cannot be read gives no tables and the reason."""
    from core import registry

    try:
        with client.connect(read_only=True) as con:
            existing = {r[0] for r in client.fetch(
                con, "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                     f"{client.placeholder}", (PREDICTIONS_SCHEMA,))}
            names = [n for n in registry.TABLES if n in existing]
            if not names:
                return [], None
            union = " UNION ALL ".join(
                f"SELECT {i} AS i, count(*) AS n, count(CASE WHEN run_id = {client.placeholder} THEN 1 END) AS mine "
                f"FROM {client.ident(PREDICTIONS_SCHEMA)}.{client.ident(n)}" for i, n in enumerate(names)
            )
            counts = {int(i): (int(n), int(mine)) for i, n, mine in client.fetch(con, union, (run_id,) * len(names))}
    except Exception as exc:
        return [], f"row counts unavailable: {' '.join(str(exc).split())[:200]}"
    return [{"name": n, "rows": counts[i][0], "refreshed_by_this_run": counts[i][1] > 0}
            for i, n in enumerate(names)], None


def build_event(report: RunReport, tables: list[dict], public_url: str, tables_note: str | None = None) -> dict:
    """The JSON document every receiver of this run's event gets (the same bytes for all of them)."""
    from core import registry

    base = public_url.rstrip("/")
    return {
        "event": report.event,
        # The same for every delivery of this run's event: a receiver that sees it twice can drop the copy.
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"spendwise:{report.run_id}:{report.event}")),
        "run_id": report.run_id,
        "status": "succeeded" if report.succeeded else "failed",
        "trigger": report.trigger,
        "started_at": _iso(report.started_at),
        "finished_at": _iso(report.finished_at),
        "duration_seconds": round((report.finished_at - report.started_at).total_seconds(), 1),
        "tables": [{**t, "schema": PREDICTIONS_SCHEMA, "url": f"{base}/data/{t['name']}"} for t in tables],
        "tables_note": tables_note,
        "charts": [{"name": c.name, "title": c.title, "url": f"{base}/charts/{c.name}.png"}
                   for c in registry.CHARTS.values()],
        "failed_checks": [asdict(c) for c in report.failed_checks],
        "failed_steps": list(report.failed_steps),
        "error": report.error,
        "links": {"status": f"{base}/status", "data": f"{base}/data", "charts": f"{base}/charts"},
    }


def encode_event(event: dict) -> bytes:
    return json.dumps(event, separators=(",", ":"), sort_keys=True).encode("utf-8")


# ------------------------------------------------------------------------------------------- signing


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 with `secret` over `<timestamp>.<body>` (bytes as sent)."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str | None, body: bytes, signature: str | None,
                     now: float | None = None, tolerance: float = SIGNATURE_TOLERANCE_SECONDS) -> bool:
    """What a receiver does: recompute the signature over the raw body, compare in constant time, and
    refuse a timestamp further than `tolerance` seconds from its clock (an old event replayed)."""
    if not timestamp or not signature:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


# ------------------------------------------------------------------------------------------- delivery


@dataclass
class Delivery:
    """One event to one URL: what `ops.webhook_deliveries` records."""

    delivery_id: str
    run_id: str
    url: str  # redacted
    target_name: str
    event: str
    status_code: int | None = None
    error: str | None = None
    attempts: int = 0
    latency_ms: float | None = None  # the last attempt's, request sent to answer (or error)
    elapsed_ms: float | None = None  # first attempt to outcome, backoff included
    delivered: bool = False
    attempted_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    recorded: bool = True  # False: the warehouse could not record it (then dedupe could not be checked)


def send_with_retries(target: WebhookTarget, body: bytes, event: str, delivery: Delivery,
                      settings: WebhookSettings, deadline: float, sleep=time.sleep) -> Delivery:
    """POST `body` to `target` until a 2xx answer, `settings.attempts` tries or `deadline` (a
    time.monotonic() value), whichever comes first. Retries on errors, timeouts, 5xx, 408, 425 and
    429, waiting backoff_seconds, then twice as long each time (a 429's Retry-After when longer).
    Each attempt is signed afresh, so its timestamp is current. Never raises."""
    import httpx

    started = time.monotonic()
    wait = settings.backoff_seconds
    with httpx.Client(follow_redirects=False) as http:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0.01:
                delivery.error = (delivery.error or "") + ("; " if delivery.error else "") + \
                    f"gave up: the {settings.deadline_seconds:g} s delivery deadline passed"
                break
            delivery.attempts += 1
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "spendwise-webhooks/1",
                EVENT_HEADER: event,
                DELIVERY_HEADER: delivery.delivery_id,
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(settings.secret, timestamp, body),
            }
            sent = time.monotonic()
            retry_after, final = 0.0, False
            try:
                response = http.post(target.url, content=body, headers=headers,
                                     timeout=min(settings.timeout_seconds, remaining))
                status = delivery.status_code = response.status_code
                delivery.error = None
                if 200 <= status < 300:
                    delivery.delivered = final = True
                elif 300 <= status < 400:
                    final = True
                    delivery.error = (f"HTTP {status}: redirected to {redact_url(response.headers.get('Location', '?'))}; "
                                      "redirects are not followed, configure the final URL (not retried)")
                elif status < 500 and status not in _RETRY_STATUSES:
                    final = True
                    delivery.error = f"HTTP {status}: the receiver refused the event (not retried)"
                else:
                    delivery.error = f"HTTP {status}"
                    retry_after = _retry_after(response.headers.get("Retry-After"))
            except httpx.TimeoutException:
                delivery.status_code = None
                delivery.error = f"no answer within {min(settings.timeout_seconds, remaining):g} s"
            except Exception as exc:  # refused, reset, TLS, DNS ...: retried like a timeout
                delivery.status_code = None
                # The URL's credentials and query never reach the record, whatever the message quotes.
                detail = " ".join(str(exc).replace(target.url, target.redacted_url).split())[:200]
                delivery.error = f"{type(exc).__name__}: {detail}"
            delivery.latency_ms = round((time.monotonic() - sent) * 1000, 1)
            if final or delivery.attempts >= settings.attempts:
                break
            pause = max(wait, retry_after)
            if time.monotonic() + pause >= deadline:
                delivery.error += f"; gave up: the next attempt would start after the {settings.deadline_seconds:g} s deadline"
                break
            sleep(pause)
            wait *= 2
    delivery.elapsed_ms = round((time.monotonic() - started) * 1000, 1)
    delivery.attempted_at = datetime.now(timezone.utc)
    return delivery


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


# ------------------------------------------------------------------------------------------- recording


_COLUMNS = (
    ("delivery_id", "TEXT PRIMARY KEY"),
    ("run_id", "TEXT NOT NULL"),
    ("event", "TEXT NOT NULL"),
    ("url", "TEXT NOT NULL"),
    ("target_name", "TEXT NOT NULL"),
    ("status_code", "INTEGER"),
    ("error", "TEXT"),
    ("attempts", "INTEGER NOT NULL"),
    ("latency_ms", "DOUBLE PRECISION"),
    ("elapsed_ms", "DOUBLE PRECISION"),
    ("delivered", "BOOLEAN NOT NULL"),
    ("state", "TEXT NOT NULL"),  # sending, delivered, failed
    ("attempted_at", "TIMESTAMP NOT NULL"),  # UTC
)


class DeliveryLog:
    """`ops.webhook_deliveries` in the warehouse: one row per (run, URL, event), claimed before the
    first attempt, so a second notifier of the same run (the CLI and the run-status sensor) sends nothing."""

    def __init__(self, client):
        self.client = client
        self.table = f"{client.ident(OPS_SCHEMA)}.{client.ident(DELIVERIES_TABLE)}"

    def _create(self, con) -> None:
        columns = ", ".join(f"{name} {kind}" for name, kind in _COLUMNS)
        self.client.execute(con, f"CREATE TABLE IF NOT EXISTS {self.table} ({columns}, UNIQUE (run_id, url, event))")

    def claim(self, delivery: Delivery, stale_after_s: float | None = None) -> bool:
        """Insert the row as `sending`; False when this run's event already went (or goes) to this URL.

        A `sending` row older than `stale_after_s` was left by a notifier that died mid-delivery (a
        sensor's code server killed, say) long after its deadline: it is taken over, delivery id kept,
        so the event is not lost; a younger one belongs to a notifier still at work and is left alone.
        """
        p = self.client.placeholder
        at = delivery.attempted_at.astimezone(timezone.utc).replace(tzinfo=None)
        with self.client.write_transaction(OPS_SCHEMA) as con:
            self._create(con)
            rows = self.client.fetch(
                con,
                f"INSERT INTO {self.table} (delivery_id, run_id, event, url, target_name, attempts, delivered, state, "
                f"attempted_at) VALUES ({p}, {p}, {p}, {p}, {p}, 0, FALSE, 'sending', {p}) "
                "ON CONFLICT (run_id, url, event) DO NOTHING RETURNING delivery_id",
                (delivery.delivery_id, delivery.run_id, delivery.event, delivery.url, delivery.target_name, at),
            )
            if rows:
                return True
            if stale_after_s is None:
                return False
            taken = self.client.fetch(
                con,
                f"UPDATE {self.table} SET attempted_at = {p}, target_name = {p} WHERE run_id = {p} AND url = {p} "
                f"AND event = {p} AND state = 'sending' AND attempted_at < {p} RETURNING delivery_id",
                (at, delivery.target_name, delivery.run_id, delivery.url, delivery.event,
                 at - timedelta(seconds=stale_after_s)),
            )
        if taken:
            delivery.delivery_id = str(taken[0][0])
        return bool(taken)

    def finish(self, delivery: Delivery) -> None:
        p = self.client.placeholder
        with self.client.write_transaction(OPS_SCHEMA) as con:
            self._create(con)
            self.client.fetch(
                con,
                f"UPDATE {self.table} SET status_code = {p}, error = {p}, attempts = {p}, latency_ms = {p}, "
                f"elapsed_ms = {p}, delivered = {p}, state = {p}, attempted_at = {p} WHERE delivery_id = {p} "
                "RETURNING delivery_id",
                (delivery.status_code, delivery.error, delivery.attempts, delivery.latency_ms, delivery.elapsed_ms,
                 delivery.delivered, "delivered" if delivery.delivered else "failed",
                 delivery.attempted_at.astimezone(timezone.utc).replace(tzinfo=None), delivery.delivery_id),
            )

    def rows(self, run_id: str | None = None) -> list[dict]:
        names = [n for n, _ in _COLUMNS]
        where, params = (f" WHERE run_id = {self.client.placeholder}", (run_id,)) if run_id else ("", ())
        with self.client.connect(read_only=True) as con:
            found = self.client.fetch(con, f"SELECT {', '.join(names)} FROM {self.table}{where} "
                                           "ORDER BY attempted_at, url", params)
        return [dict(zip(names, r)) for r in found]


# ------------------------------------------------------------------------------------------- the hook

# One notifier at a time per process: DuckDB takes one connection configuration per file and process.
_NOTIFY_LOCK = threading.Lock()


def notify_refresh(report: RunReport, client, settings: WebhookSettings, sleep=time.sleep) -> list[Delivery]:
    """Send `report`'s event to every configured URL that wants it and record each delivery.

    Never raises and never takes longer than about settings.deadline_seconds (plus the warehouse
    reads and writes): the URLs are tried in parallel threads, each attempt's timeout cut to what
    is left. A URL this run's event already went to is skipped (the row in ops.webhook_deliveries).
    """
    try:
        with _NOTIFY_LOCK:
            return _notify(report, client, settings, sleep)
    except Exception as exc:  # a webhook problem is never the refresh's problem
        log.warning("webhooks for run %s: not sent: %s", report.run_id, " ".join(str(exc).split())[:300])
        return []


def _notify(report: RunReport, client, settings: WebhookSettings, sleep) -> list[Delivery]:
    if not settings.configured:
        return []
    deadline = time.monotonic() + settings.deadline_seconds
    try:
        targets = [t for t in configured_targets(settings) if report.event in t.events]
    except WebhookConfigError as exc:
        log.error("webhooks for run %s: not sent, the configuration is wrong: %s", report.run_id, exc)
        return []
    if not targets:
        return []
    tables, note = table_rows(client, report.run_id)
    body = encode_event(build_event(report, tables, settings.public_url, note))
    store = DeliveryLog(client)
    pending: list[tuple[WebhookTarget, Delivery]] = []
    for target in targets:
        delivery = Delivery(delivery_id=str(uuid.uuid4()), run_id=report.run_id, url=target.redacted_url,
                            target_name=target.name, event=report.event)
        try:
            if not store.claim(delivery, stale_after_s=2 * settings.deadline_seconds + 60):
                log.info("webhook %s: run %s's %s was already sent there; not sent again",
                         target.redacted_url, report.run_id, report.event)
                continue
        except Exception as exc:
            # Without the record there is no dedupe; a failed run is when the event matters most, so send.
            delivery.recorded = False
            log.warning("webhook %s: cannot record the delivery in %s.%s (%s); sending anyway",
                        target.redacted_url, OPS_SCHEMA, DELIVERIES_TABLE, " ".join(str(exc).split())[:200])
        pending.append((target, delivery))
    if not pending:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(pending)), thread_name_prefix="spendwise-webhook") as pool:
        futures = [pool.submit(send_with_retries, t, body, report.event, d, settings, deadline, sleep)
                   for t, d in pending]
        done = [f.result() for f in futures]
    for delivery in done:
        if delivery.recorded:
            try:
                store.finish(delivery)
            except Exception as exc:
                delivery.recorded = False
                log.warning("webhook %s: delivery not recorded: %s", delivery.url, " ".join(str(exc).split())[:200])
        outcome = (f"delivered (HTTP {delivery.status_code})" if delivery.delivered
                   else f"FAILED ({delivery.error})")
        (log.info if delivery.delivered else log.warning)(
            "webhook %s %s for run %s: %s after %d attempt(s), %.0f ms",
            delivery.url, report.event, report.run_id, outcome, delivery.attempts, delivery.elapsed_ms or 0)
    return done
