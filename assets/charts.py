"""Chart assets: one PNG per prediction table, written atomically and previewed in the Dagster UI."""

import base64
import io
from pathlib import Path

from dagster import AssetExecutionContext, AssetKey, ConfigurableResource, MaterializeResult, MetadataValue, asset
from pydantic import Field

from orchestration.settings import get_settings
from orchestration.warehouse import Warehouse

# chart file stem -> (table it draws, asset that publishes the table)
CHART_SOURCES = {
    "roi_forecast": ("ml_roi_forecast", "roi_forecast"),
    "roi_timeseries": ("ml_roi_timeseries", "roi_timeseries"),
    "reach_ctr": ("ml_reach_ctr_timeseries", "reach_ctr_timeseries"),
    "budget_recommendation": ("ml_budget_recommendation", "budget_recommendation"),
    "attribution_comparison": ("channel_attribution", "channel_attribution"),
    "mmm_roas": ("mmm_channel_roas", "media_mix_model"),
    "revenue_contribution": ("mmm_revenue_decomposition", "media_mix_model"),
}
MODEL_WINDOW_ASSETS = {"media_mix_model", "budget_recommendation"}
PREVIEW_WIDTH = 480  # the UI preview is a thumbnail, so the event log stays small


class ChartStore(ConfigurableResource):
    """Where chart PNGs are written (`SPENDWISE_CHARTS_DIR`, default `<repo>/data/charts`)."""

    directory: str = Field(default_factory=lambda: str(get_settings().charts_dir))

    def path(self, stem: str) -> Path:
        return Path(self.directory) / f"{stem}.png"


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


def _build_chart_asset(stem: str, table: str, upstream: str):
    @asset(
        name=f"{stem}_chart",
        deps=[AssetKey(upstream)],
        group_name="charts",
        kinds={"python", "seaborn"},
        description=f"{stem}.png drawn from predictions.{table}, written atomically to the charts directory.",
    )
    def chart(context: AssetExecutionContext, warehouse: Warehouse, charts: ChartStore) -> MaterializeResult:
        from charts.plots import CHARTS, write_png_atomic

        df = warehouse.read_table("predictions", table)
        context_ = _chart_context(df, warehouse, model_window=upstream in MODEL_WINDOW_ASSETS)
        png = CHARTS[stem](df, context_)
        path = write_png_atomic(charts.path(stem), png)
        return MaterializeResult(
            metadata={
                "path": MetadataValue.path(str(path)),
                "size_bytes": len(png),
                "source_table": f"predictions.{table}",
                "preview": MetadataValue.md(_preview_markdown(png, stem)),
            }
        )

    return chart


chart_assets = [_build_chart_asset(stem, table, upstream) for stem, (table, upstream) in CHART_SOURCES.items()]
