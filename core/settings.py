"""One settings object for the whole project, read from environment variables (and never written).

`SPENDWISE_WAREHOUSE_URL` is the single switch between the embedded DuckDB warehouse and PostgreSQL.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_DIR = REPO_ROOT / "dbt_project"
DEFAULT_DUCKDB_PATH = REPO_ROOT / "data" / "warehouse.duckdb"
DEFAULT_CHARTS_DIR = REPO_ROOT / "data" / "charts"
DEFAULT_DAGSTER_HOME = REPO_ROOT / ".dagster_home"

RAW_SCHEMA = "raw"
ANALYTICS_SCHEMA = "analytics"
PREDICTIONS_SCHEMA = "predictions"
SCHEDULE_CRON = "*/30 * * * *"
SCHEDULE_INTERVAL = timedelta(minutes=30)
# A published table or chart is overdue when it missed two schedule ticks in a row: the freshness
# policy in the Dagster UI and `stale` on GET /status both read this one limit.
STALE_AFTER = 2 * SCHEDULE_INTERVAL
REFRESH_JOB_NAME = "refresh_all"
REFRESH_TAG = ("spendwise/refresh", "true")
LOCAL_INSTANCE_TEMPLATE = REPO_ROOT / "deploy" / "dagster.local.yaml"
# The HTTP service's bearer tokens: the API token may do everything, the read token only read.
API_TOKEN_ENV = "SPENDWISE_API_TOKEN"
READ_TOKEN_ENV = "SPENDWISE_READ_TOKEN"


# DuckDB's memory and thread limits and its spill folder, set as query parameters of a duckdb:// URL
# (duckdb:///w.duckdb?memory_limit=1GB&threads=2&temp_directory=/scratch): dbt (profiles.yml) and
# every Python connection (core.warehouse) apply the same values.
_DUCKDB_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|%)$", re.IGNORECASE)
# Without memory_limit in the URL, DuckDB (dbt's and every Python connection's) gets a quarter of the
# machine's memory, at most 1 GB, instead of DuckDB's own 80%: with it a 10M-touchpoint refresh stays
# within 2 GiB for the whole process tree (docs/scale_benchmarks.md); bigger data spills into
# temp_directory. Set memory_limit in the URL to give it more.
DUCKDB_DEFAULT_MEMORY_SHARE = 0.25
DUCKDB_DEFAULT_MEMORY_CAP_MB = 1000


def default_duckdb_memory_limit() -> str:
    """A quarter of physical memory, capped at DUCKDB_DEFAULT_MEMORY_CAP_MB (e.g. '1000MB')."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf: assume a small machine
        total = 2 * 1024**3
    megabytes = min(int(total * DUCKDB_DEFAULT_MEMORY_SHARE / 1e6), DUCKDB_DEFAULT_MEMORY_CAP_MB)
    return f"{max(megabytes, 100)}MB"


@dataclass(frozen=True)
class DuckDBLimits:
    """Resource limits of DuckDB connections; None: the default, `default_duckdb_memory_limit()` (a
    quarter of RAM, at most 1 GB), one thread per core, `<database file>.tmp` for spilling."""

    memory_limit: str | None = None
    threads: int | None = None
    temp_directory: Path | None = None

    @classmethod
    def from_query(cls, url: str, query: str) -> DuckDBLimits:
        params = dict(parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(params) - {"memory_limit", "threads", "temp_directory"})
        if unknown:
            raise ValueError(
                f"SPENDWISE_WAREHOUSE_URL {url.split('?')[0]!r}: unknown DuckDB parameter(s) {', '.join(unknown)}; "
                "allowed: memory_limit (e.g. 1GB or 50%), threads (e.g. 2), temp_directory (a folder)"
            )
        memory = params.get("memory_limit")
        if memory is not None and not _DUCKDB_MEMORY.match(memory.strip()):
            raise ValueError(f"SPENDWISE_WAREHOUSE_URL: memory_limit={memory!r} is not a size such as 1GB, 512MB or 50%")
        threads = params.get("threads")
        if threads is not None and not (threads.isdigit() and int(threads) >= 1):
            raise ValueError(f"SPENDWISE_WAREHOUSE_URL: threads={threads!r} is not a whole number of 1 or more")
        temp = params.get("temp_directory")
        if temp is not None and not temp.strip():
            raise ValueError("SPENDWISE_WAREHOUSE_URL: temp_directory is empty; name a folder or leave it out")
        return cls(memory_limit=memory.strip() if memory else None, threads=int(threads) if threads else None,
                   temp_directory=Path(temp) if temp else None)

    def connect_config(self) -> dict[str, object]:
        """The duckdb.connect config: only what was set, so a plain connection of the same file in
        this process (which DuckDB requires to have the same configuration) stays compatible."""
        config: dict[str, object] = {}
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        if self.threads:
            config["threads"] = self.threads
        if self.temp_directory:
            config["temp_directory"] = str(self.temp_directory)
        return config

    def default_settings(self) -> dict[str, str]:
        """What a Python connection SETs after opening when the URL leaves it out (as SET, not as
        connect config: a plain duckdb.connect of the same file in this process stays compatible)."""
        return {} if self.memory_limit else {"memory_limit": default_duckdb_memory_limit()}

    def dbt_env(self, database: Path) -> dict[str, str]:
        """The values profiles.yml hands dbt-duckdb's `settings`, the defaults where unset."""
        return {
            "SPENDWISE_DUCKDB_MEMORY_LIMIT": self.memory_limit or default_duckdb_memory_limit(),
            "SPENDWISE_DUCKDB_THREADS": str(self.threads or os.cpu_count() or 1),
            "SPENDWISE_DUCKDB_TEMP_DIR": str(self.temp_directory or f"{database}.tmp"),
        }


# A spark:// URL names a local folder holding the Spark warehouse (`warehouse/`) and its Derby
# metastore (`metastore_db/`): spark:///srv/spendwise/spark?master=local[4]&shuffle_partitions=8.
_SPARK_MASTER = re.compile(r"^(local(\[(\*|\d+)\])?|(spark|yarn|k8s)://?\S*|yarn)$")


@dataclass(frozen=True)
class SparkSettings:
    """A local Spark warehouse (dbt-spark `method: session`): its folder, master and shuffle width."""

    root: Path
    master: str = "local[2]"
    shuffle_partitions: int = 4

    @property
    def warehouse_dir(self) -> Path:
        return self.root / "warehouse"

    @property
    def metastore_dir(self) -> Path:
        return self.root / "metastore_db"

    @classmethod
    def from_query(cls, url: str, root: Path, query: str) -> SparkSettings:
        params = dict(parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(params) - {"master", "shuffle_partitions"})
        if unknown:
            raise ValueError(
                f"SPENDWISE_WAREHOUSE_URL {url.split('?')[0]!r}: unknown Spark parameter(s) {', '.join(unknown)}; "
                "allowed: master (e.g. local[4]), shuffle_partitions (e.g. 8)"
            )
        master = params.get("master", cls.master).strip()
        if not _SPARK_MASTER.match(master):
            raise ValueError(f"SPENDWISE_WAREHOUSE_URL: master={master!r} is not a Spark master such as local[4] or spark://host:7077")
        partitions = params.get("shuffle_partitions", str(cls.shuffle_partitions))
        if not (partitions.isdigit() and int(partitions) >= 1):
            raise ValueError(f"SPENDWISE_WAREHOUSE_URL: shuffle_partitions={partitions!r} is not a whole number of 1 or more")
        return cls(root=root, master=master, shuffle_partitions=int(partitions))

    def dbt_env(self) -> dict[str, str]:
        return {
            "SPENDWISE_SPARK_DIR": str(self.root),
            "SPENDWISE_SPARK_MASTER": self.master,
            "SPENDWISE_SPARK_SHUFFLE_PARTITIONS": str(self.shuffle_partitions),
        }


@dataclass(frozen=True)
class WarehouseUrl:
    """A parsed `SPENDWISE_WAREHOUSE_URL`; `kind` is "duckdb", "postgres" or "spark"."""

    url: str
    kind: str
    duckdb_path: Path | None = None
    duckdb_limits: DuckDBLimits = field(default_factory=DuckDBLimits)
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    database: str = ""
    spark: SparkSettings | None = None

    @classmethod
    def parse(cls, url: str) -> WarehouseUrl:
        parsed = urlparse(url)
        scheme = parsed.scheme.split("+")[0]
        if scheme == "duckdb":
            # duckdb:///abs/path.duckdb and duckdb:////abs/path.duckdb both name /abs/path.duckdb.
            raw_path = "/" + unquote(parsed.netloc + parsed.path).lstrip("/")
            if not raw_path or raw_path == "/":
                raise ValueError(
                    f"SPENDWISE_WAREHOUSE_URL {url!r} names no DuckDB file; "
                    "use duckdb:///absolute/path/warehouse.duckdb"
                )
            return cls(url=url, kind="duckdb", duckdb_path=Path(raw_path),
                       duckdb_limits=DuckDBLimits.from_query(url, parsed.query))
        if scheme == "spark":
            if parsed.netloc:
                raise ValueError(
                    f"SPENDWISE_WAREHOUSE_URL {url!r}: a spark:// URL names a local folder, not a host "
                    f"({parsed.netloc!r}); use spark:///absolute/path/to/spark_dir (a Thrift or Connect "
                    "cluster is a dbt profile, see deploy/spark.md)"
                )
            raw_path = unquote(parsed.path)
            if raw_path.strip("/") == "":
                raise ValueError(
                    f"SPENDWISE_WAREHOUSE_URL {url!r} names no Spark folder; use spark:///absolute/path/to/spark_dir"
                )
            # spark:///abs/dir and spark:////abs/dir both name /abs/dir (as for duckdb://).
            root = Path("/" + raw_path.lstrip("/"))
            return cls(url=url, kind="spark", spark=SparkSettings.from_query(url, root, parsed.query))
        if scheme in ("postgresql", "postgres"):
            database = parsed.path.lstrip("/")
            if not database:
                raise ValueError(
                    "SPENDWISE_WAREHOUSE_URL for PostgreSQL names no database; "
                    "use postgresql://user:password@host:5432/database"
                )
            return cls(
                url=url,
                kind="postgres",
                host=parsed.hostname or "127.0.0.1",
                port=parsed.port or 5432,
                user=unquote(parsed.username or "postgres"),
                password=unquote(parsed.password or ""),
                database=database,
            )
        raise ValueError(
            f"SPENDWISE_WAREHOUSE_URL has unsupported scheme {parsed.scheme!r}: "
            "use duckdb:///path/to/file.duckdb, postgresql://user:password@host:port/database "
            "or spark:///path/to/spark_dir"
        )

    @property
    def dbt_target(self) -> str:
        return self.kind

    def redacted(self) -> str:
        """The URL with any password replaced, safe for logs and metadata."""
        if self.kind == "duckdb":
            base = f"duckdb://{self.duckdb_path}" if self.duckdb_path.is_absolute() else f"duckdb:///{self.duckdb_path}"
            query = urlparse(self.url).query
            return f"{base}?{query}" if query else base
        if self.kind == "spark":
            return self.url
        return f"postgresql://{self.user}:***@{self.host}:{self.port}/{self.database}"

    def dbt_env(self) -> dict[str, str]:
        """Environment variables read by dbt_project/profiles.yml for this warehouse.

        Only the dbt resource (orchestration.dbt) hands them to dbt; nothing writes them into this
        process's environment.

        Indirect selection is cautious so that materializing a subset of assets (e.g. only the seed)
        runs only the tests whose parents are all selected.
        """
        common = {"DBT_INDIRECT_SELECTION": "cautious"}
        if self.kind == "duckdb":
            return {**common, "SPENDWISE_DBT_TARGET": "duckdb", "SPENDWISE_DUCKDB_PATH": str(self.duckdb_path),
                    **self.duckdb_limits.dbt_env(self.duckdb_path)}
        if self.kind == "spark":
            return {**common, "SPENDWISE_DBT_TARGET": "spark", **self.spark.dbt_env()}
        return {
            **common,
            "SPENDWISE_DBT_TARGET": "postgres",
            "SPENDWISE_PG_HOST": self.host,
            "SPENDWISE_PG_PORT": str(self.port),
            "SPENDWISE_PG_USER": self.user,
            "SPENDWISE_PG_PASSWORD": self.password,
            "SPENDWISE_PG_DATABASE": self.database,
        }


WEBHOOK_URLS_ENV = "SPENDWISE_WEBHOOK_URLS"
WEBHOOK_CONFIG_ENV = "SPENDWISE_WEBHOOK_CONFIG"
WEBHOOK_SECRET_ENV = "SPENDWISE_WEBHOOK_SECRET"
WEBHOOK_ATTEMPTS_ENV = "SPENDWISE_WEBHOOK_ATTEMPTS"
WEBHOOK_TIMEOUT_ENV = "SPENDWISE_WEBHOOK_TIMEOUT_SECONDS"
WEBHOOK_BACKOFF_ENV = "SPENDWISE_WEBHOOK_BACKOFF_SECONDS"
WEBHOOK_DEADLINE_ENV = "SPENDWISE_WEBHOOK_DEADLINE_SECONDS"
PUBLIC_URL_ENV = "SPENDWISE_PUBLIC_URL"
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"


def _positive_number(environ, name: str, default: float, integer: bool = False) -> float:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = -1
    if not value > 0 or value != value or value == float("inf"):
        kind = "a whole number above 0 (e.g. 4)" if integer else "a number of seconds above 0 (e.g. 5 or 0.5)"
        raise ValueError(f"{name}={raw!r} is not {kind}")
    return value


@dataclass(frozen=True)
class WebhookSettings:
    """Where refresh events go and how hard delivery tries (core.webhooks reads the config file)."""

    urls: tuple[str, ...] = ()
    config_file: Path | None = None
    secret: str = field(default="", repr=False)  # signs every event; never logged
    attempts: int = 4
    timeout_seconds: float = 5.0  # one attempt
    backoff_seconds: float = 1.0  # wait before the 2nd attempt; doubles after each failed one
    deadline_seconds: float = 30.0  # every attempt to every URL ends within this, whatever the receivers do
    public_url: str = DEFAULT_PUBLIC_URL  # base of the /data and /charts links in an event

    @property
    def configured(self) -> bool:
        return bool(self.urls or self.config_file)

    @classmethod
    def from_env(cls, environ=None) -> WebhookSettings:
        """SPENDWISE_WEBHOOK_* and SPENDWISE_PUBLIC_URL; ValueError naming the variable when one is wrong."""
        environ = os.environ if environ is None else environ
        urls = tuple(u.strip() for u in (environ.get(WEBHOOK_URLS_ENV) or "").split(",") if u.strip())
        config = (environ.get(WEBHOOK_CONFIG_ENV) or "").strip()
        secret = environ.get(WEBHOOK_SECRET_ENV) or ""
        if (urls or config) and not secret:
            raise ValueError(
                f"webhooks are configured ({WEBHOOK_URLS_ENV if urls else WEBHOOK_CONFIG_ENV}) but "
                f"{WEBHOOK_SECRET_ENV} is not set: set it to a long random string shared with the receivers, "
                "which use it to verify each event's signature"
            )
        public_url = (environ.get(PUBLIC_URL_ENV) or DEFAULT_PUBLIC_URL).strip().rstrip("/")
        if urlparse(public_url).scheme not in ("http", "https") or not urlparse(public_url).netloc:
            raise ValueError(f"{PUBLIC_URL_ENV}={public_url!r} is not an http(s) URL such as https://spendwise.example.com")
        return cls(
            urls=urls,
            config_file=Path(config).expanduser() if config else None,
            secret=secret,
            attempts=int(_positive_number(environ, WEBHOOK_ATTEMPTS_ENV, 4, integer=True)),
            timeout_seconds=_positive_number(environ, WEBHOOK_TIMEOUT_ENV, 5.0),
            backoff_seconds=_positive_number(environ, WEBHOOK_BACKOFF_ENV, 1.0),
            deadline_seconds=_positive_number(environ, WEBHOOK_DEADLINE_ENV, 30.0),
            public_url=public_url,
        )


# The serving database: where the prediction tables, their history (predictions_history) and the ops
# tables (audit log, webhook deliveries, BI roles) are published and read, when they do not live in the
# warehouse dbt builds. Required with a spark:// warehouse (Spark tables are not transactional).
SERVING_URL_ENV = "SPENDWISE_SERVING_URL"


def serving_url_from_env() -> str:
    return (os.environ.get(SERVING_URL_ENV) or "").strip()


def parse_serving_url(url: str | None) -> WarehouseUrl | None:
    """SPENDWISE_SERVING_URL parsed: None when unset; a postgresql:// URL, or a ValueError naming it."""
    if not url:
        return None
    if urlparse(url).scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError(
            f"{SERVING_URL_ENV} must be a postgresql://user:password@host:5432/database URL; got the scheme "
            f"{urlparse(url).scheme!r}: the serving database takes the atomic publications and the HTTP "
            "service's concurrent reads, which a PostgreSQL database does"
        )
    return WarehouseUrl.parse(url)


def serving_for(warehouse: WarehouseUrl, serving: WarehouseUrl | None, doing: str = "publishing") -> WarehouseUrl:
    """Where the prediction, history and ops tables live: the serving database when one is set, otherwise
    the warehouse itself; a Spark warehouse without a serving database is a ValueError naming `doing`."""
    if serving is not None:
        return serving
    if warehouse.kind == "spark":
        raise ValueError(
            f"{SERVING_URL_ENV} is required when SPENDWISE_WAREHOUSE_URL is spark:// ({warehouse.redacted()}) "
            f"for {doing}, because the prediction tables, their history and the ops tables are published "
            "atomically to a PostgreSQL serving database, not to Spark tables (see deploy/spark.md): "
            "set it to postgresql://user:password@host:5432/database"
        )
    return warehouse


@dataclass(frozen=True)
class Settings:
    warehouse: WarehouseUrl
    charts_dir: Path
    dagster_home: Path
    # Bearer tokens of the HTTP service (service.auth); empty: not configured. Never logged (repr=False).
    api_token: str = field(default="", repr=False)
    read_token: str = field(default="", repr=False)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    # SPENDWISE_SERVING_URL parsed; None: the prediction and ops tables live in the warehouse
    serving_url: WarehouseUrl | None = field(default=None, repr=False)

    @property
    def dbt_target(self) -> str:
        return self.warehouse.dbt_target

    @property
    def serving(self) -> WarehouseUrl:
        """The database of the prediction, history and ops tables (serving_for: required with Spark)."""
        return serving_for(self.warehouse, self.serving_url)


def warehouse_url_from_env() -> str:
    return os.environ.get("SPENDWISE_WAREHOUSE_URL") or f"duckdb:///{DEFAULT_DUCKDB_PATH}"


@cache
def get_settings() -> Settings:
    """Settings of this process. Cached: the environment is read once, at the first call."""
    warehouse = WarehouseUrl.parse(warehouse_url_from_env())
    return Settings(
        warehouse=warehouse,
        charts_dir=Path(os.environ.get("SPENDWISE_CHARTS_DIR") or DEFAULT_CHARTS_DIR),
        dagster_home=Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME),
        api_token=(os.environ.get(API_TOKEN_ENV) or "").strip(),
        read_token=(os.environ.get(READ_TOKEN_ENV) or "").strip(),
        webhooks=WebhookSettings.from_env(),
        serving_url=parse_serving_url(serving_url_from_env()),
    )


# History of the prediction tables (core.history): every publication also appends its rows to
# HISTORY_SCHEMA.<table>, and runs older than the retention are deleted in the same transaction.
HISTORY_SCHEMA = "predictions_history"
HISTORY_RETENTION_DAYS_ENV = "SPENDWISE_HISTORY_RETENTION_DAYS"
HISTORY_RETENTION_RUNS_ENV = "SPENDWISE_HISTORY_RETENTION_RUNS"
# 35 days: every day of the default 30-day forecast horizon can still be scored when it arrives.
DEFAULT_HISTORY_RETENTION_DAYS = 35


@dataclass(frozen=True)
class HistoryRetention:
    """How long published runs stay in the history: a run goes when it is older than `days` or is not
    among the newest `runs` runs of its table; None leaves that limit off (both None: keep everything).

    The seeds' 7-day expiry is `SPENDWISE_HISTORY_RETENTION_DAYS=7`.
    """

    days: float | None = DEFAULT_HISTORY_RETENTION_DAYS
    runs: int | None = None

    def __post_init__(self) -> None:
        if self.days is not None and not (isinstance(self.days, (int, float)) and self.days > 0):
            raise ValueError(f"history retention days must be a number above 0 or None, got {self.days!r}")
        if self.runs is not None and not (isinstance(self.runs, int) and not isinstance(self.runs, bool)
                                          and self.runs >= 1):
            raise ValueError(f"history retention runs must be a whole number of at least 1 or None, got {self.runs!r}")

    @classmethod
    def from_env(cls) -> HistoryRetention:
        """SPENDWISE_HISTORY_RETENTION_DAYS (default 35; `off` keeps every day) and
        SPENDWISE_HISTORY_RETENTION_RUNS (default off; e.g. 336 keeps a week of 30-minute refreshes).
        Read at each publication, so a changed value applies from the next refresh."""
        return cls(days=_retention_limit(HISTORY_RETENTION_DAYS_ENV, float, DEFAULT_HISTORY_RETENTION_DAYS),
                   runs=_retention_limit(HISTORY_RETENTION_RUNS_ENV, int, None))

    def describe(self) -> str:
        parts = ([f"{self.days:g} days"] if self.days is not None else []) + (
            [f"the newest {self.runs} runs"] if self.runs is not None else [])
        return " and ".join(parts) if parts else "every run (no retention limit)"


def _retention_limit(name: str, kind: type, default):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() in ("off", "none", "0"):
        return None
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or value != value or value <= 0 or value == float("inf"):
        what = "a number of days above 0, e.g. 7 or 35" if kind is float else "a whole number of runs, e.g. 336"
        raise ValueError(f"{name}={raw!r} is not {what} (or 'off' for no limit)")
    return value


RAW_RETENTION_ENV = "SPENDWISE_RAW_RETENTION_DAYS"


def raw_retention_days() -> int | None:
    """SPENDWISE_RAW_RETENTION_DAYS: keep raw user-level rows (touchpoints, conversions) this many days.

    Unset, empty, `off` or `0`: kept for ever (the default). Read at each use. The pipeline enforces
    it before every dbt build (dbt_project/macros/raw_retention.sql), `spendwise purge-user
    --retention` on demand (core.purge).
    """
    raw = os.environ.get(RAW_RETENTION_ENV, "").strip()
    if not raw or raw.lower() in ("off", "none", "0"):
        return None
    if not raw.isdigit():
        raise ValueError(f"{RAW_RETENTION_ENV}={raw!r} is not a whole number of days above 0 (e.g. 395), "
                         "or 'off' to keep every raw row")
    return int(raw)
