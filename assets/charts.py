"""Chart assets: one PNG per prediction table, written atomically and previewed in the Dagster UI.
Each run also removes the temporary files that a writer killed mid-write left in the charts folder."""

import base64
import io
from pathlib import Path

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from assets.resources import ChartStore, Warehouse
from core import registry

MODEL_WINDOW_ASSETS = {"media_mix_model", "budget_recommendation", "spend_scenarios", "channel_triangulation"}
PREVIEW_WIDTH = 480  # the UI preview is a thumbnail, so the event log stays small


def _preview_markdown(png: bytes, stem: str) -> str:
    from PIL import Image

    image = Image.open(io.BytesIO(png))
    image.thumbnail((PREVIEW_WIDTH, PREVIEW_WIDTH))
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return f"![{stem}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def _chart_context(df, warehouse: Warehouse, model_window: bool = False):
    """Period, run time and run id of the data a chart draws."""
    import pandas as pd

    from charts.plots import ChartContext

    if "date" in df.columns:
        dates = pd.to_datetime(df.loc[~df["is_forecast"].astype(bool), "date"] if "is_forecast" in df else df["date"])
        start, end = dates.min(), dates.max()
    elif model_window:
        # The media-mix model (and the budget built on it) sees only its lookback window.
        diag = warehouse.read_table("predictions", "mmm_diagnostics").set_index("metric")["detail"]
        start, end = pd.to_datetime(diag.get("start_date")), pd.to_datetime(diag.get("end_date"))
    else:
        span = warehouse.read_sql("select min(date) as start, max(date) as stop from analytics.fct_channel_daily")
        start, end = pd.to_datetime(span["start"].iloc[0]), pd.to_datetime(span["stop"].iloc[0])
    return ChartContext(
        period_start=None if pd.isna(start) else start.date(),
        period_end=None if pd.isna(end) else end.date(),
        generated_at=pd.Timestamp(df["generated_at"].max()).to_pydatetime(),
        run_id=str(df["run_id"].iloc[0]),
    )


def _build_chart_asset(chart: registry.Chart):
    stem, table = chart.name, chart.table
    upstream = registry.table(table).asset

    @asset(
        name=f"{stem}_chart",
        deps=[AssetKey(upstream)],
        group_name="charts",
        kinds={"python", "seaborn"},
        description=f"{chart.title}: {stem}.png drawn from predictions.{table}, written atomically to the "
        "charts directory.",
    )
    def chart(context: AssetExecutionContext, warehouse: Warehouse, charts: ChartStore) -> MaterializeResult:
        from charts.plots import CHARTS, remove_stale_temp_files, write_png_atomic

        df = warehouse.read_table("predictions", table)
        context_ = _chart_context(df, warehouse, model_window=upstream in MODEL_WINDOW_ASSETS)
        png = CHARTS[stem](df, context_)
        path = write_png_atomic(charts.path(stem), png)
        removed = remove_stale_temp_files(path.parent)
        if removed:
            context.log.warning(f"removed {len(removed)} temporary chart file(s) left by a killed writer: "
                                + ", ".join(p.name for p in removed))
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(str(path)),
                "size_bytes": len(png),
                "source_table": f"predictions.{table}",
                "stale_temp_files_removed": len(removed),
                "preview": MetadataValue.md(_preview_markdown(png, stem)),
            }
        )

    return chart


chart_assets = [_build_chart_asset(chart) for chart in registry.CHARTS.values()]
