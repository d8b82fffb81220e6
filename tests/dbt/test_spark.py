"""The dbt project on Apache Spark (local mode, dbt-spark `method: session`) against DuckDB on the same raw data.

One JVM for the whole module: the raw tables are written, `dbt build` runs in this process (dbt-spark's
session method picks up the running SparkSession) and the marts are read back through that session, so
Derby's one-JVM metastore is never contended. DuckDB's build runs meanwhile in a subprocess.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from core.raw_contract import RAW_TABLES
from core.settings import DBT_DIR, WarehouseUrl
from core.warehouse import WarehouseClient
from tests.conftest import IN_CI, load_demo

try:
    import pyspark  # noqa: F401
except ImportError:
    # `make test` (and so CI) installs requirements-spark.txt; there a missing pyspark is a failure.
    if IN_CI:
        raise
    pytest.skip("pyspark is not installed: `make test` installs it from requirements-spark.txt",
                allow_module_level=True)
pytestmark = pytest.mark.slow

DBT = str(Path(sys.executable).with_name("dbt"))
FLOAT_RTOL = 1e-9


def _dbt_args(target_path: Path, log_path: Path) -> list[str]:
    return ["--profiles-dir", str(DBT_DIR), "--project-dir", str(DBT_DIR),
            "--target-path", str(target_path), "--log-path", str(log_path)]


def _normalised(df: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by every non-float column; dates and timestamps as datetime64, ints as int64."""
    out = df.copy()
    out.columns = [c.lower() for c in out.columns]
    for col in out.columns:
        s = out[col]
        if s.dtype == object and s.dropna().map(lambda v: hasattr(v, "isoformat")).all() and s.notna().any():
            out[col] = pd.to_datetime(s)
        elif pd.api.types.is_datetime64_any_dtype(s):
            out[col] = s.astype("datetime64[us]")
        elif pd.api.types.is_integer_dtype(s) or pd.api.types.is_bool_dtype(s):
            out[col] = s.astype("float64") if s.isna().any() else s.astype("int64")
        elif not pd.api.types.is_float_dtype(s):
            out[col] = s.astype(object).where(s.notna(), None)  # NaN (pandas text) and None alike
    keys = [c for c in out.columns if not pd.api.types.is_float_dtype(out[c])]
    return out.sort_values(keys, na_position="first", kind="mergesort").reset_index(drop=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The same demo raw data built by dbt on DuckDB (subprocess) and on local Spark (in process)."""
    from dbt.cli.main import dbtRunner

    from core.spark import load_raw_tables_into, spark_session
    from ml.synthetic import generate_demo_data

    data = generate_demo_data(scale=0.02, days=120, seed=16)
    tables = data.tables()
    raw = {n: tables[n] for n in RAW_TABLES}
    extra = {n: df for n, df in tables.items() if n not in RAW_TABLES}

    root = tmp_path_factory.mktemp("spark_vs_duckdb")
    duck_url = f"duckdb:///{root / 'warehouse.duckdb'}"
    load_demo(duck_url, data)
    duck = subprocess.Popen(
        [DBT, "build", *_dbt_args(root / "target_duckdb", root / "logs_duckdb")],
        cwd=DBT_DIR, env={**os.environ, **WarehouseUrl.parse(duck_url).dbt_env()},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )

    spark_url = WarehouseUrl.parse(f"spark:///{root / 'spark'}")
    timings = {}
    saved_env = {k: os.environ.get(k) for k in spark_url.dbt_env()}
    try:
        with spark_session(spark_url.spark) as session:
            started = time.monotonic()
            written = load_raw_tables_into(session, raw, extra=extra)
            timings["spark_load_s"] = time.monotonic() - started
            os.environ.update(spark_url.dbt_env())
            started = time.monotonic()
            result = dbtRunner().invoke(["build", *_dbt_args(root / "target_spark", root / "logs_spark")])
            timings["spark_dbt_build_s"] = time.monotonic() - started
            assert result.exception is None, f"dbt build on Spark raised {result.exception!r}"
            failures = [f"{r.node.unique_id}: {r.status}: {(r.message or '')[:500]}"
                        for r in result.result if str(r.status) not in ("success", "pass")]
            assert result.success and not failures, "dbt build on Spark failed:\n" + "\n".join(failures)
            spark_tables = {
                t.name: session.table(f"analytics.`{t.name}`").toPandas()
                for t in session.catalog.listTables("analytics") if t.tableType != "VIEW"
            }
            # The Python assets' read path: the warehouse client on the same URL lends this session.
            client = WarehouseClient(spark_url)
            client_reads = {
                "fct_channel_daily": client.read_table("analytics", "fct_channel_daily"),
                "row_counts": client.row_counts("analytics"),
                "exists": (client.table_exists("analytics", "fct_revenue_daily"),
                           client.table_exists("analytics", "no_such_table")),
                "email_days": client.read_sql(
                    f"select count(*) as n from analytics.fct_channel_daily where channel = {client.placeholder}",
                    ("email",)),
            }
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    duck_out, _ = duck.communicate(timeout=900)
    assert duck.returncode == 0, f"dbt build on DuckDB failed:\n{duck_out[-6000:]}"

    import duckdb

    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'analytics' "
            "and table_type = 'BASE TABLE'").fetchall()]
        duck_tables = {n: con.execute(f'select * from analytics."{n}"').df() for n in names}
    print(f"spark timings: {timings}")
    return {"duckdb": duck_tables, "spark": spark_tables, "written": written, "raw": raw, "timings": timings,
            "client": client_reads, "spark_url": spark_url}


def test_raw_tables_land_in_spark_whole(built):
    for name, frame in built["raw"].items():
        assert built["written"][name] == len(frame) > 0, name


def test_spark_builds_the_same_tables_as_duckdb(built):
    duck, spark = built["duckdb"], built["spark"]
    assert {"fct_campaign_daily", "fct_channel_daily", "fct_revenue_daily", "dim_channel", "dim_campaign",
            "conversion_paths", "touchpoint_credit", "attribution_credit_buckets"} <= set(duck)
    assert sorted(spark) == sorted(duck)


MARTS = ["fct_campaign_daily", "fct_channel_daily", "fct_revenue_daily", "dim_channel", "dim_campaign",
         "conversion_paths", "int_journeys", "touchpoint_credit", "attribution_credit_buckets"]


def _assert_same_table(table: str, duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    duck, spark = _normalised(duck), _normalised(spark)
    assert list(spark.columns) == list(duck.columns), table
    assert len(spark) == len(duck), f"{table}: {len(spark)} rows on Spark, {len(duck)} on DuckDB"
    for col in duck.columns:
        d, s = duck[col], spark[col]
        if pd.api.types.is_float_dtype(d) or pd.api.types.is_float_dtype(s):
            d, s = d.astype("float64"), s.astype("float64")
            both_nan = d.isna() & s.isna()
            close = [math.isclose(a, b, rel_tol=FLOAT_RTOL, abs_tol=1e-9) for a, b in zip(d[~both_nan], s[~both_nan])]
            assert all(close), f"{table}.{col}: {close.count(False)} values differ beyond {FLOAT_RTOL}"
        else:
            pd.testing.assert_series_equal(s, d, check_dtype=False, check_names=False, obj=f"{table}.{col}")


@pytest.mark.parametrize("table", MARTS)
def test_every_mart_equals_duckdb(built, table):
    assert len(built["duckdb"][table]) > 0, f"{table} is empty on DuckDB: the comparison would prove nothing"
    _assert_same_table(table, built["duckdb"][table], built["spark"][table])


def test_every_other_table_equals_duckdb(built):
    """Tables added later (bookkeeping of the incremental models included) are compared too."""
    others = sorted(set(built["duckdb"]) - set(MARTS))
    for table in others:
        # Bookkeeping of the run itself: its start time, and how far it read the loaders' change log
        # (ops.raw_changes, which the DuckDB and PostgreSQL loaders write; Spark rebuilds in full).
        run_columns = [c for c in ("batch_at", "raw_changes_upto") if c in built["duckdb"][table].columns]
        _assert_same_table(table, built["duckdb"][table].drop(columns=run_columns),
                           built["spark"][table].drop(columns=run_columns))


def test_warehouse_client_reads_spark(built):
    reads, spark = built["client"], built["spark"]
    assert_equal = pd.testing.assert_frame_equal
    assert_equal(_normalised(reads["fct_channel_daily"]), _normalised(spark["fct_channel_daily"]))
    assert reads["row_counts"] == {name: len(frame) for name, frame in spark.items()}
    assert reads["exists"] == (True, False)
    channel = spark["fct_channel_daily"]
    assert int(reads["email_days"]["n"].iloc[0]) == int((channel["channel"] == "email").sum()) > 0


def test_spark_publications_go_to_the_serving_database_and_marts_are_read_from_spark(built, pg_url):
    """The assets' resource on Spark: publication and prediction reads in PostgreSQL, mart reads in Spark
    (one kept session for both reads, released afterwards); the Spark client itself never publishes."""
    from assets.resources import Warehouse
    from core.spark import kept_session_running, release_kept_session

    wh = Warehouse(url=built["spark_url"].url, serving_url=pg_url)
    published = wh.publish_tables({"example": pd.DataFrame({"channel": ["email"], "value": [1.5]})}, run_id="r1")
    assert [(t.schema, t.rows) for t in published] == [("predictions", 1)]
    assert WarehouseClient(pg_url).row_counts("predictions") == {"example": 1}
    assert wh.read_table("predictions", "example")["value"].tolist() == [1.5]
    try:
        assert wh.row_counts("analytics") == {name: len(frame) for name, frame in built["spark"].items()}
        assert not wh.table_exists("predictions", "fct_channel_daily") and wh.table_exists("analytics", "dim_channel")
        assert kept_session_running()  # both Spark reads used one session, still there for the next
    finally:
        assert release_kept_session()
    assert not kept_session_running()
    with pytest.raises(ValueError, match="set SPENDWISE_SERVING_URL"):
        WarehouseClient(built["spark_url"]).publish(pd.DataFrame({"a": [1]}), "anything")


def test_spark_urls_parse_into_the_profile_variables(tmp_path):
    url = WarehouseUrl.parse(f"spark:///{tmp_path}/sp?master=local[3]&shuffle_partitions=6")
    assert url.kind == url.dbt_target == "spark"
    assert url.spark.warehouse_dir == tmp_path / "sp" / "warehouse"
    assert url.dbt_env() | {"DBT_INDIRECT_SELECTION": "cautious"} == {
        "DBT_INDIRECT_SELECTION": "cautious", "SPENDWISE_DBT_TARGET": "spark", "SPENDWISE_SPARK_DIR": str(tmp_path / "sp"),
        "SPENDWISE_SPARK_MASTER": "local[3]", "SPENDWISE_SPARK_SHUFFLE_PARTITIONS": "6",
    }


@pytest.mark.parametrize(("url", "message"), [
    ("spark://cluster:10000/db", "names a local folder, not a host"),
    ("spark:///", "names no Spark folder"),
    ("spark:///srv/sp?memory=4g", "unknown Spark parameter"),
    ("spark:///srv/sp?master=everywhere", "master='everywhere' is not a Spark master"),
    ("spark:///srv/sp?shuffle_partitions=0", "shuffle_partitions='0' is not a whole number"),
])
def test_bad_spark_urls_say_what_is_wrong(url, message):
    with pytest.raises(ValueError, match=message):
        WarehouseUrl.parse(url)
