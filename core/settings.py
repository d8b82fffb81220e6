"""One settings object for the whole project, read from environment variables (and never written).

`SPENDWISE_WAREHOUSE_URL` is the single switch between the embedded DuckDB warehouse and PostgreSQL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlparse

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


@dataclass(frozen=True)
class WarehouseUrl:
    """A parsed `SPENDWISE_WAREHOUSE_URL`; `kind` is "duckdb" or "postgres"."""

    url: str
    kind: str
    duckdb_path: Path | None = None
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    database: str = ""

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
            return cls(url=url, kind="duckdb", duckdb_path=Path(raw_path))
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
            "use duckdb:///path/to/file.duckdb or postgresql://user:password@host:port/database"
        )

    @property
    def dbt_target(self) -> str:
        return self.kind

    def redacted(self) -> str:
        """The URL with any password replaced, safe for logs and metadata."""
        if self.kind == "duckdb":
            return f"duckdb://{self.duckdb_path}" if self.duckdb_path.is_absolute() else f"duckdb:///{self.duckdb_path}"
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
            return {**common, "SPENDWISE_DBT_TARGET": "duckdb", "SPENDWISE_DUCKDB_PATH": str(self.duckdb_path)}
        return {
            **common,
            "SPENDWISE_DBT_TARGET": "postgres",
            "SPENDWISE_PG_HOST": self.host,
            "SPENDWISE_PG_PORT": str(self.port),
            "SPENDWISE_PG_USER": self.user,
            "SPENDWISE_PG_PASSWORD": self.password,
            "SPENDWISE_PG_DATABASE": self.database,
        }


@dataclass(frozen=True)
class Settings:
    warehouse: WarehouseUrl
    charts_dir: Path
    dagster_home: Path

    @property
    def dbt_target(self) -> str:
        return self.warehouse.dbt_target


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
    )
