"""Quality gates on the models' inputs: GX suites on the marts, volume and freshness of the raw tables.

The mart gates are blocking: when one fails, no model or chart downstream runs and every previously
published table and chart stays as it was.
"""

from datetime import date, datetime, timedelta, timezone

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, AssetKey, Config, MetadataValue, asset_check
from pydantic import Field

from assets.resources import Warehouse


def _result(outcome, severity=AssetCheckSeverity.ERROR) -> AssetCheckResult:
    return AssetCheckResult(
        passed=outcome.passed, severity=severity, description=outcome.description,
        metadata={k: (MetadataValue.md(v) if k == "failures_markdown" else MetadataValue.json(v) if isinstance(v, (list, dict)) else v)
                  for k, v in outcome.detail.items() if v is not None},
    )


def _calendar_days(warehouse: Warehouse, table: str) -> int:
    span = warehouse.read_sql(f"select min(date) as first_day, max(date) as last_day from analytics.{table}")
    first, last = span["first_day"].iloc[0], span["last_day"].iloc[0]
    return 0 if first is None else int((last - first).days) + 1


@asset_check(asset=AssetKey(["analytics", "fct_channel_daily"]), blocking=True,
             description="great-expectations suite: one row per date and channel, no gaps, non-negative "
             "spend/impressions/clicks, clicks <= impressions, CTR in [0, 1], known channels.")
def gx_fct_channel_daily(warehouse: Warehouse) -> AssetCheckResult:
    from assets.publishing import gx_check

    df = warehouse.read_table("analytics", "fct_channel_daily")
    channels = warehouse.read_table("analytics", "dim_channel", ["channel"])["channel"].tolist()
    return _result(gx_check("fct_channel_daily", df, channels=channels,
                            expected_days=_calendar_days(warehouse, "fct_channel_daily")))


@asset_check(asset=AssetKey(["analytics", "fct_revenue_daily"]), blocking=True,
             description="great-expectations suite: one row per day with no missing day, revenue >= 0.")
def gx_fct_revenue_daily(warehouse: Warehouse) -> AssetCheckResult:
    from assets.publishing import gx_check

    df = warehouse.read_table("analytics", "fct_revenue_daily")
    return _result(gx_check("fct_revenue_daily", df, expected_days=_calendar_days(warehouse, "fct_revenue_daily")))


class RawVolumeConfig(Config):
    min_rows: int = Field(1, ge=0, description="fewer rows than this fail the check (blocking)")
    max_age_days: float = Field(2.0, gt=0, description="newest row older than this: the data is stale (warning)")


RAW_TIME_COLUMN = {"ad_performance_daily": "date", "touchpoints": "occurred_at", "conversions": "occurred_at"}


def _newest_day_and_age(newest: date | datetime, now: datetime) -> tuple[str, int, float]:
    """The newest row as text, its age in whole days, and the age the limit is compared with.

    A day of a daily table (a `date`) is complete at its end, so its age runs from the next midnight (UTC)."""
    if isinstance(newest, datetime):
        stamp = newest.replace(tzinfo=None)
        return f"newest row {stamp:%Y-%m-%d %H:%M} UTC", (now.date() - stamp.date()).days, (now - stamp).total_seconds() / 86400
    day_end = datetime.combine(newest, datetime.min.time()) + timedelta(days=1)
    return f"newest day {newest:%Y-%m-%d}", (now.date() - newest).days, max(0.0, (now - day_end).total_seconds() / 86400)


def _build_raw_check(table: str):
    @asset_check(name=f"{table}_volume_and_freshness", asset=AssetKey(["raw", table]), blocking=True,
                 description=f"raw.{table}: at least `min_rows` rows (an error that stops the refresh), newest row "
                 "within `max_age_days` (a warning: stale data is still modelled, up to its last complete day).")
    def check(context: AssetCheckExecutionContext, config: RawVolumeConfig, warehouse: Warehouse) -> AssetCheckResult:
        stats = warehouse.read_sql(f"select count(*) as n, max({RAW_TIME_COLUMN[table]}) as newest from raw.{table}")
        rows, newest = int(stats["n"].iloc[0]), stats["newest"].iloc[0]
        if rows < config.min_rows or newest is None or newest != newest:
            return AssetCheckResult(
                passed=False, severity=AssetCheckSeverity.ERROR,
                description=f"raw.{table}: {rows:,} rows, fewer than the minimum {config.min_rows:,}: "
                "load the export with `spendwise load DIR`",
                metadata={"rows": rows, "age_days": -1.0},
            )
        if hasattr(newest, "to_pydatetime"):
            newest = newest.to_pydatetime()
        if table == "ad_performance_daily" and isinstance(newest, datetime):
            newest = newest.date()
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        newest_text, age_days, limit_age = _newest_day_and_age(newest, now)
        fresh = limit_age <= config.max_age_days
        age_text = f"{age_days} day{'' if age_days == 1 else 's'} old"
        return AssetCheckResult(
            passed=fresh, severity=AssetCheckSeverity.WARN,
            description=f"raw.{table}: {newest_text}, {age_text}"
            + ("" if fresh else f" (stale: older than {config.max_age_days:g} days; load a newer export)")
            + f"; {rows:,} rows",
            metadata={"rows": rows, "age_days": float(age_days), "newest": newest_text.split(" ", 2)[2]},
        )

    return check


raw_checks = [_build_raw_check(t) for t in RAW_TIME_COLUMN]


class RevenueUnitsConfig(Config):
    max_ratio: float = Field(5.0, gt=1, description="largest allowed ratio between the two average order values")


# Where business revenue enters the models: the media-mix target, and the value of attributed conversions.
BUSINESS_AOV_SQL = {
    "fct_revenue_daily": "select sum(revenue) / nullif(sum(conversions), 0) from analytics.fct_revenue_daily",
    "conversion_paths": "select sum(conversion_value) / nullif(sum(conversions), 0) from analytics.conversion_paths",
}


def _build_units_check(table: str):
    @asset_check(
        name="revenue_units_agree", asset=AssetKey(["analytics", table]), blocking=True,
        additional_deps=[AssetKey(["analytics", "fct_channel_daily"])],
        description="Revenue units agree: the business's revenue per order here and the platforms' revenue per "
        "reported conversion are within `max_ratio` of each other (revenue in cents instead of units is 100x off).",
    )
    def check(config: RevenueUnitsConfig, warehouse: Warehouse) -> AssetCheckResult:
        row = warehouse.read_sql(
            f"select ({BUSINESS_AOV_SQL[table]}) as business_aov, "
            "(select sum(revenue) / nullif(sum(conversions), 0) from analytics.fct_channel_daily) as platform_aov"
        ).iloc[0]
        business, platform = row["business_aov"], row["platform_aov"]
        if business is None or platform is None or not business > 0 or not platform > 0:
            return AssetCheckResult(passed=True, severity=AssetCheckSeverity.WARN,
                                    description="no conversions on one side: revenue units cannot be compared",
                                    metadata={"business_aov": float(business or 0), "platform_aov": float(platform or 0)})
        ratio = float(max(business, platform) / min(business, platform))
        return AssetCheckResult(
            passed=ratio <= config.max_ratio,
            description=f"business revenue per order {business:,.2f} vs platform revenue per conversion "
            f"{platform:,.2f}: {ratio:.1f}x apart (limit {config.max_ratio:g}x)"
            + ("" if ratio <= config.max_ratio else "; is one of the revenue columns in cents or another currency?"),
            metadata={"business_aov": float(business), "platform_aov": float(platform), "ratio": ratio},
        )

    return check


units_checks = [_build_units_check(t) for t in BUSINESS_AOV_SQL]
revenue_units_agree = units_checks[0]


QUALITY_CHECKS = [gx_fct_channel_daily, gx_fct_revenue_daily, *units_checks, *raw_checks]
