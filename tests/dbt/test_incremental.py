"""The incremental journeys (int_journeys, touchpoint_credit, journeys_with_paths and what is built on them) equal a full
rebuild after every kind of load, on DuckDB and PostgreSQL.

Two warehouses per engine get the same loads: one is built incrementally with `dbt run`, the other
from scratch (its incremental tables dropped first); after each load their tables must match row for row. Real dbt in a
subprocess; about a minute per engine.
"""

from __future__ import annotations

import pandas as pd
import pytest

from assets.resources import Warehouse
from core.landing import merge_raw_tables
from core.purge import purge_users
from core.raw_contract import RAW_TABLES, replace_raw_tables, validate_raw_frame
from ml.synthetic import generate_demo_data
from tests.dbt.test_attribution_sql import assert_dbt_ok, run_dbt

pytestmark = pytest.mark.slow

SELECT = ["--select", "+attribution", "conversion_paths"]
COMPARED = ("int_journeys", "touchpoint_credit", "journeys_with_paths", "attribution_credit_buckets", "conversion_paths")
DAY = pd.Timedelta(days=1)


def sorted_frame(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in df.columns if not pd.api.types.is_float_dtype(df[c])]
    return df.sort_values(keys, ignore_index=True)


def drop_of(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Frames as a landing drop delivers them (read_drop validates and types them)."""
    return {name: validate_raw_frame(name, df) for name, df in frames.items()}


class Pair:
    """The incremental warehouse and its full-rebuild reference, loaded alike."""

    def __init__(self, inc_url: str, ref_url: str, tmp_path):
        self.urls = {"inc": inc_url, "ref": ref_url}
        self.tmp_path = tmp_path

    def each(self, action) -> None:
        for url in self.urls.values():
            action(Warehouse(url=url))

    def build(self, step: str, *extra: str, raw_unchanged: bool = False) -> None:
        # `run`, not `build`: the comparison below is the test (the data tests run in test_attribution_sql).
        assert_dbt_ok(run_dbt(self.urls["inc"], self.tmp_path / "inc", "run", *SELECT, *extra))
        if not raw_unchanged:  # else the reference's last full rebuild is still the answer
            # The reference: the incremental tables and their state dropped, so dbt builds them from scratch.
            ref_client = Warehouse(url=self.urls["ref"]).client
            with ref_client.write_transaction("ops") as con:
                for table in ("analytics.touchpoint_credit", "analytics.journeys_with_paths",
                              "analytics.int_journeys", "analytics.int_journeys_changed",
                              "ops.dbt_incremental_state"):
                    ref_client.execute(con, f"DROP TABLE IF EXISTS {table}")
            assert_dbt_ok(run_dbt(self.urls["ref"], self.tmp_path / "ref", "run", *SELECT))
        inc, ref = Warehouse(url=self.urls["inc"]), Warehouse(url=self.urls["ref"])
        for table in COMPARED:
            got, want = sorted_frame(inc.read_table("analytics", table)), sorted_frame(ref.read_table("analytics", table))
            assert len(want) > 0, f"{step}: the full rebuild of {table} is empty"
            pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, atol=1e-12,
                                          obj=f"{step}: incremental {table} vs full rebuild")

    def last_batch(self) -> tuple[bool, int]:
        """(is_full, users recomputed) of the incremental warehouse's last dbt run."""
        changes = Warehouse(url=self.urls["inc"]).read_table("analytics", "int_journeys_changed")
        last = changes[changes["batch_at"] == changes["batch_at"].max()]
        return bool(last["is_full"].any()), int(last["user_id"].notna().sum())


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def pair(request, tmp_path) -> Pair:
    if request.param == "duckdb":
        return Pair(f"duckdb:///{tmp_path / 'inc.duckdb'}", f"duckdb:///{tmp_path / 'ref.duckdb'}", tmp_path)
    return Pair(request.getfixturevalue("pg_url"), request.getfixturevalue("pg_module_url"), tmp_path)


def test_incremental_tables_equal_a_full_rebuild_after_every_load(pair, monkeypatch):
    # Incremental journeys are opt-in (a writer that does not log its changes would go unseen).
    monkeypatch.setenv("SPENDWISE_INCREMENTAL_JOURNEYS", "true")
    data = generate_demo_data(scale=0.05, days=120, seed=11)
    tp, cv = data.touchpoints.copy(), data.conversions.copy()
    end = tp["occurred_at"].max().normalize()
    first_cut, second_cut = end - 20 * DAY, end - 10 * DAY
    users = tp["user_id"].nunique()

    # 1. Initial load (replace, as `spendwise load` / `demo`): history up to 20 days ago.
    def initial(wh):
        replace_raw_tables(wh, {"ad_performance_daily": data.ad_performance_daily,
                                "touchpoints": tp[tp["occurred_at"] < first_cut],
                                "conversions": cv[cv["occurred_at"] < first_cut]})
    assert set(RAW_TABLES) == {"ad_performance_daily", "touchpoints", "conversions"}
    pair.each(initial)
    pair.build("initial load")
    assert pair.last_batch()[0], "a first build is a full one"

    # 2. A landing drop: ten new days, and a restated old day (5 days before the cut, inside the
    #    journey window of later conversions): its touches change channel, one moves a day later,
    #    its conversions change revenue and one moves two days earlier.
    restated = first_cut - 5 * DAY
    on_day = tp[(tp["occurred_at"] >= restated) & (tp["occurred_at"] < restated + DAY)].copy()
    assert len(on_day) > 5
    on_day["channel"] = on_day["channel"].map(lambda c: "email" if c != "email" else "search")
    on_day.iloc[0, on_day.columns.get_loc("occurred_at")] += DAY
    cv_day = cv[(cv["occurred_at"] >= restated - 3 * DAY) & (cv["occurred_at"] < restated + DAY)].copy()
    assert len(cv_day) > 1
    cv_day["revenue"] = cv_day["revenue"] * 2 + 1
    cv_day.iloc[0, cv_day.columns.get_loc("occurred_at")] -= 2 * DAY
    new_days = (tp["occurred_at"] >= first_cut) & (tp["occurred_at"] < second_cut)
    new_conv = (cv["occurred_at"] >= first_cut) & (cv["occurred_at"] < second_cut)
    drop = drop_of({"touchpoints": pd.concat([tp[new_days], on_day], ignore_index=True),
                    "conversions": pd.concat([cv[new_conv], cv_day], ignore_index=True)})
    pair.each(lambda wh: merge_raw_tables(wh.client, drop, source="new-days-and-restated"))
    pair.build("new days and a restated day")
    is_full, recomputed = pair.last_batch()
    assert not is_full and 0 < recomputed < users, (is_full, recomputed, users)

    # 3. Late-arriving touchpoints for old conversions (converted 12-30 days before the cut), with
    #    the remaining days; the late touches land on days no other load touched.
    old = cv[(cv["occurred_at"] < first_cut - 12 * DAY) & (cv["occurred_at"] >= first_cut - 30 * DAY)].head(6)
    assert len(old) >= 3
    late = pd.DataFrame({
        "touchpoint_id": tp["touchpoint_id"].max() + 1 + pd.RangeIndex(len(old)).to_numpy(),
        "user_id": old["user_id"].to_numpy(),
        "occurred_at": (old["occurred_at"] - 2 * DAY).to_numpy(),
        "channel": "affiliate",
        "campaign_id": tp["campaign_id"].iloc[0],
        "interaction": "click",
    })
    rest = drop_of({"touchpoints": pd.concat([tp[tp["occurred_at"] >= second_cut], late[tp.columns]], ignore_index=True),
                    "conversions": cv[cv["occurred_at"] >= second_cut]})
    pair.each(lambda wh: merge_raw_tables(wh.client, rest, source="late-arrivals"))
    pair.build("late-arriving touchpoints")
    journeys = Warehouse(url=pair.urls["inc"]).read_table("analytics", "int_journeys")
    late_rows = journeys[journeys["touchpoint_id"].isin(late["touchpoint_id"].astype(str))]
    assert set(late_rows["conversion_id"]) == set(old["conversion_id"].astype(str))

    # 4. Raw retention (on-run-start hook) deletes the oldest days; a user is purged (purge-user).
    span = (pd.Timestamp.utcnow().tz_localize(None) - tp["occurred_at"].min()).days
    monkeypatch.setenv("SPENDWISE_RAW_RETENTION_DAYS", str(span - 15))
    purged = str(cv["user_id"].iloc[len(cv) // 2])
    pair.each(lambda wh: purge_users(wh.client, [purged], actor="test:incremental"))
    pair.build("retention and a purged user")
    assert not pair.last_batch()[0]
    journeys = Warehouse(url=pair.urls["inc"]).read_table("analytics", "int_journeys")
    assert purged not in set(journeys["user_id"])
    assert journeys["occurred_at"].min() >= tp["occurred_at"].min() + 14 * DAY
    monkeypatch.delenv("SPENDWISE_RAW_RETENTION_DAYS")

    # 5. Raw data replaced wholesale (`spendwise load` again): the next run rebuilds everything.
    keep = set(tp["user_id"].drop_duplicates().iloc[::2])
    pair.each(lambda wh: replace_raw_tables(wh, {"ad_performance_daily": data.ad_performance_daily,
                                                 "touchpoints": tp[tp["user_id"].isin(keep)],
                                                 "conversions": cv[cv["user_id"].isin(keep)]}))
    pair.build("raw data replaced")
    assert pair.last_batch()[0], "a wholesale replace must trigger a full rebuild"

    # 6. `spendwise refresh --full-refresh` (the dbt var) with nothing changed: a full rebuild, same rows.
    pair.build("forced full refresh", "--vars", "{spendwise_full_refresh: true}", raw_unchanged=True)
    assert pair.last_batch()[0]
