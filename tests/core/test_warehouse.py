"""The one publish path: atomic swaps on DuckDB and PostgreSQL, run stamps, refusals."""

from __future__ import annotations

import pandas as pd
import pytest

from core.settings import WarehouseUrl
from core.warehouse import WarehouseClient
from assets.resources import Warehouse


def _frame(n: int, value: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.date_range("2025-01-01", periods=n, freq="D"),
            "channel": ["search"] * n,
            "value": [value] * n,
            "count": list(range(n)),
            "flag": [True] * n,
        }
    )


@pytest.fixture
def warehouse(engine_url) -> Warehouse:
    return Warehouse(url=engine_url)


def test_publish_stamps_every_row_and_types_columns(warehouse):
    published = warehouse.publish(_frame(5, 1.5), "example", run_id="run-1")
    assert published.rows == 5
    df = warehouse.read_table("predictions", "example")
    assert len(df) == 5
    assert set(df["run_id"]) == {"run-1"}
    assert df["generated_at"].notna().all()
    assert df["value"].tolist() == [1.5] * 5
    types = warehouse.read_sql(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'predictions' and table_name = 'example'"
    )
    by_name = dict(zip(types["column_name"], types["data_type"].str.upper()))
    assert by_name["date"] == "DATE"
    assert by_name["count"] == "BIGINT"
    assert by_name["flag"] == "BOOLEAN"


def test_failed_publish_keeps_the_previous_table_and_leaves_no_staging(warehouse, monkeypatch):
    warehouse.publish(_frame(3, 1.0), "example", run_id="good")
    original = WarehouseClient.load_frame

    def crash_after_loading(self, con, df, schema, table):
        original(self, con, df, schema, table)
        raise RuntimeError("simulated crash in the middle of a publish")

    monkeypatch.setattr(WarehouseClient, "load_frame", crash_after_loading)
    with pytest.raises(RuntimeError, match="simulated crash"):
        warehouse.publish(_frame(7, 2.0), "example", run_id="bad")
    monkeypatch.undo()

    df = warehouse.read_table("predictions", "example")
    assert len(df) == 3 and set(df["run_id"]) == {"good"}
    assert list(warehouse.row_counts("predictions")) == ["example"]


def test_publish_tables_is_all_or_nothing(warehouse):
    warehouse.publish_tables({"a": _frame(2, 1.0), "b": _frame(2, 1.0)}, run_id="first")
    bad = _frame(2, 1.0).assign(value=[object(), object()])  # a column the warehouse cannot store
    with pytest.raises(TypeError, match="column 'value'"):
        warehouse.publish_tables({"a": _frame(9, 3.0), "b": bad}, run_id="second")
    assert warehouse.row_counts("predictions") == {"a": 2, "b": 2}
    assert set(warehouse.read_table("predictions", "a")["run_id"]) == {"first"}


def test_empty_result_is_refused_and_previous_table_kept(warehouse):
    warehouse.publish(_frame(4, 1.0), "example", run_id="good")
    with pytest.raises(ValueError, match="0 rows"):
        warehouse.publish(_frame(0, 1.0), "example", run_id="empty")
    assert warehouse.row_counts("predictions") == {"example": 4}


def test_url_parsing_and_redaction():
    pg = WarehouseUrl.parse("postgresql://bi:s3cr%40t@db.example:6543/analytics")
    assert (pg.kind, pg.host, pg.port, pg.user, pg.password, pg.database) == (
        "postgres", "db.example", 6543, "bi", "s3cr@t", "analytics",
    )
    assert "s3cr" not in pg.redacted()
    assert pg.dbt_env()["SPENDWISE_PG_PASSWORD"] == "s3cr@t"
    duck = WarehouseUrl.parse("duckdb:////tmp/x/warehouse.duckdb")
    assert str(duck.duckdb_path) == "/tmp/x/warehouse.duckdb" and duck.dbt_target == "duckdb"
    with pytest.raises(ValueError, match="unsupported scheme 'mysql'"):
        WarehouseUrl.parse("mysql://root@localhost/db")
    with pytest.raises(ValueError, match="names no database"):
        WarehouseUrl.parse("postgresql://u@h:5432/")


def test_republish_keeps_dependent_views_and_a_new_shape_replaces_the_table(warehouse):
    warehouse.publish(_frame(3, 1.0), "example", run_id="one")
    backend = warehouse.client
    with backend.connect() as con:
        backend.execute(con, "CREATE VIEW predictions.example_view AS SELECT channel, value FROM predictions.example")
        if warehouse.kind == "postgres":
            con.commit()
    warehouse.publish(_frame(5, 2.0), "example", run_id="two")
    view = warehouse.read_sql("select * from predictions.example_view")
    assert len(view) == 5 and set(view["value"]) == {2.0}
    reshaped = _frame(2, 3.0).drop(columns=["flag"])
    if warehouse.kind == "postgres":
        with pytest.raises(RuntimeError, match="depend on it"):
            warehouse.publish(reshaped, "example", run_id="three")
        assert warehouse.row_counts("predictions") == {"example": 5}
    else:
        warehouse.publish(reshaped, "example", run_id="three")
        assert "flag" not in warehouse.read_table("predictions", "example").columns


def test_text_that_looks_like_a_null_marker_stays_text(warehouse):
    """COPY's NULL marker must not swallow a real value (PostgreSQL's default marker is \\N)."""
    frame = pd.DataFrame({"label": ["\\N", "NULL", "", None, "x"], "value": [1.0, None, 3.0, 4.0, 5.0]})
    warehouse.publish(frame, "null_markers", run_id="r")
    back = warehouse.read_sql('select label, value from predictions.null_markers order by value nulls first')
    assert back["label"].tolist()[0] == "NULL" and back["value"].isna().tolist()[0]
    labels = warehouse.read_table("predictions", "null_markers")["label"].tolist()
    assert "\\N" in labels and "NULL" in labels and "x" in labels
    assert sum(v is None or v != v for v in labels) == 1  # only the real None is missing


# ------------------------------------------------------------------------------ the serving database


def test_a_serving_database_takes_the_predictions_and_their_history_and_raw_stays_in_the_warehouse(tmp_path, pg_url):
    """SPENDWISE_SERVING_URL: what the assets publish (and read back) lives in PostgreSQL, dbt's tables in the
    warehouse; an asset calls the same resource methods either way."""
    duck = f"duckdb:///{tmp_path / 'w.duckdb'}"
    wh = Warehouse(url=duck, serving_url=pg_url)
    wh.publish_tables({"example": _frame(3, 1.0)}, run_id="r1")
    wh.publish_tables({"example": _frame(4, 2.0)}, run_id="r2")
    wh.publish_tables({"landed": _frame(2, 0.5)}, schema="raw", stamp=False)
    serving, warehouse = WarehouseClient(pg_url), WarehouseClient(duck)
    assert serving.row_counts("predictions") == {"example": 4}
    assert serving.row_counts("predictions_history") == {"example": 7}
    assert warehouse.row_counts("predictions") == {} and warehouse.row_counts("predictions_history") == {}
    assert warehouse.row_counts("raw") == {"landed": 2} and "raw" not in serving.read_sql(
        "select schema_name from information_schema.schemata")["schema_name"].tolist()
    # reads follow the schema: predictions from the serving database, raw from the warehouse
    assert wh.read_table("predictions", "example")["run_id"].unique().tolist() == ["r2"]
    assert wh.table_exists("predictions", "example") and not wh.table_exists("raw", "example")
    assert wh.row_counts("raw") == {"landed": 2}
    assert wh.serving_client.url.kind == "postgres" and wh.client.url.kind == "duckdb"


def test_the_serving_url_is_read_from_the_environment_and_must_be_postgresql(monkeypatch, tmp_path, pg_url):
    from core.settings import SERVING_URL_ENV, get_settings, parse_serving_url, serving_for

    monkeypatch.setenv("SPENDWISE_WAREHOUSE_URL", f"spark:///{tmp_path / 'spark'}")
    monkeypatch.setenv(SERVING_URL_ENV, pg_url)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        assert settings.serving == WarehouseUrl.parse(pg_url) and settings.warehouse.kind == "spark"
        # its password never reaches a log through the repr
        assert WarehouseUrl.parse(pg_url).database not in repr(settings)
    finally:
        get_settings.cache_clear()
    duck = WarehouseUrl.parse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert serving_for(duck, None) == duck  # without one, the warehouse serves its own predictions
    with pytest.raises(ValueError, match=f"{SERVING_URL_ENV} must be a postgresql://"):
        parse_serving_url(f"spark:///{tmp_path}")
    with pytest.raises(ValueError, match=f"{SERVING_URL_ENV} is required when SPENDWISE_WAREHOUSE_URL is spark://"):
        serving_for(WarehouseUrl.parse(f"spark:///{tmp_path}"), None, "the HTTP service")
