"""The ten Spendwise report charts: prediction tables in, 1200x700 PNG bytes out.

Pure plotting on seaborn/matplotlib (Agg, no pyplot figures, no dagster); one palette for every chart.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import matplotlib

# Workers and CI have no display; choosing Agg before seaborn pulls in pyplot keeps it that way.
matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure, SubFigure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from charts.palette import CHANNEL_COLORS, channel_colors  # noqa: E402
from core.registry import ATTRIBUTION_MODELS  # noqa: E402

__all__ = [
    "CHARTS",
    "ChartContext",
    "attribution_comparison_chart",
    "channel_triangulation_chart",
    "budget_recommendation_chart",
    "forecast_accuracy_chart",
    "channel_colors",
    "mmm_roas_chart",
    "reach_ctr_chart",
    "remove_stale_temp_files",
    "revenue_contribution_chart",
    "roi_forecast_chart",
    "roi_timeseries_chart",
    "spend_scenarios_chart",
    "write_png_atomic",
]

WIDTH_PX = 1200
HEIGHT_PX = 700
DPI = 100
HISTORY_DAYS = 120
SMOOTHING_DAYS = 7
# Above this many days the contribution chart shows weekly averages: daily noise hides the mix.
WEEKLY_AFTER_DAYS = 120
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# write_png_atomic's temporary files: hidden, `.<name>.png.<random>.tmp`, beside the chart.
TEMP_PATTERN = ".*.png.*.tmp"
# A temporary file older than this belongs to no running writer (a chart is written in well under a second).
STALE_TEMP_AFTER_S = 300

_MODEL_LABELS = {
    "first_touch": "first\ntouch", "last_touch": "last\ntouch", "linear": "linear",
    "time_decay": "time\ndecay", "position_based": "position\nbased", "w_shaped": "W-shaped",
    "assisted": "assisted", "markov": "Markov", "shapley": "Shapley",
}

_INK = "#222222"
_MUTED = "#5f6368"
_UP = "#1b7f3b"
_DOWN = "#c0392b"
_FORECAST_ALPHA = 0.22
_UNIDENTIFIED = "#6b6b6b"  # channels the media-mix model cannot identify


@dataclass(frozen=True)
class ChartContext:
    """What a chart's title says about the data and the run.

    period_start / period_end: first and last date of the data behind the chart (either may be
        None; with only the end the title says "data to <end>").
    generated_at: when the run produced the tables; naive datetimes are taken as UTC, aware
        ones are converted to UTC for the title.
    run_id: the pipeline run; its first 12 characters are shown beside the period.
    """

    period_start: date | None
    period_end: date | None
    generated_at: datetime
    run_id: str | None = None


# --------------------------------------------------------------------------------------------
# Input checks


# How ml.forecasting's `method` says a channel has no platform revenue (charts may not import ml).
NO_REVENUE_PHRASE = "no platform revenue in the data"


def _prepare(df: pd.DataFrame, chart: str, table: str, required: Sequence[str]) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{chart} chart: expected the {table} table as a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{chart} chart: table {table} lacks column(s) {missing}; it has {sorted(map(str, df.columns))}. "
            f"Pass the {table} table as its asset writes it."
        )
    if df.empty:
        raise ValueError(
            f"{chart} chart: table {table} is empty (0 rows), there is nothing to draw; "
            f"materialize {table} with data before drawing the chart."
        )
    return df.loc[:, list(required)].copy()


def _as_float(frame: pd.DataFrame, columns: Sequence[str], chart: str, table: str) -> pd.DataFrame:
    for col in columns:
        try:
            frame[col] = pd.to_numeric(frame[col], errors="raise").astype("float64")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{chart} chart: column {table}.{col} must be numeric ({exc})") from exc
    return frame


def _as_dates(frame: pd.DataFrame, chart: str, table: str) -> pd.DataFrame:
    try:
        frame["date"] = pd.to_datetime(frame["date"]).dt.tz_localize(None).dt.normalize()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{chart} chart: column {table}.date must hold dates ({exc})") from exc
    if frame["date"].isna().any():
        raise ValueError(f"{chart} chart: {int(frame['date'].isna().sum())} row(s) of {table} have no date")
    return frame


def _as_flag(frame: pd.DataFrame, chart: str, table: str) -> pd.DataFrame:
    flag = frame["is_forecast"]
    if flag.isna().any() or not (pd.api.types.is_bool_dtype(flag) or set(pd.unique(flag)) <= {0, 1}):
        raise ValueError(
            f"{chart} chart: column {table}.is_forecast must be boolean without NULLs "
            f"(found values {sorted(map(str, pd.unique(flag)))[:5]})"
        )
    frame["is_forecast"] = flag.astype(bool)
    return frame


def _as_channel(frame: pd.DataFrame, chart: str, table: str, column: str = "channel") -> pd.DataFrame:
    if frame[column].isna().any():
        raise ValueError(f"{chart} chart: {int(frame[column].isna().sum())} row(s) of {table} have no {column}")
    frame[column] = frame[column].astype(str)
    return frame


def _one_row_per_channel(frame: pd.DataFrame, chart: str, table: str) -> None:
    duplicated = frame.loc[frame["channel"].duplicated(), "channel"].unique().tolist()
    if duplicated:
        raise ValueError(
            f"{chart} chart: table {table} must have one row per channel, but {duplicated[:5]} appear more than "
            "once; filter it to one run and horizon first."
        )


def _check_context(ctx: ChartContext, chart: str) -> None:
    if not isinstance(ctx, ChartContext):
        raise TypeError(f"{chart} chart: ctx must be a ChartContext, got {type(ctx).__name__}")
    if not isinstance(ctx.generated_at, datetime):
        raise TypeError(f"{chart} chart: ChartContext.generated_at must be a datetime, got {ctx.generated_at!r}")


def _channel_order(names: Sequence[str]) -> list[str]:
    known = list(CHANNEL_COLORS)
    unique = list(dict.fromkeys(names))
    return sorted(unique, key=lambda n: (0, known.index(n.lower()), n) if n.lower() in known else (1, 0, n))


# --------------------------------------------------------------------------------------------
# Formatting


def _compact(value: float, signed: bool = False) -> str:
    if not np.isfinite(value):
        return "n/a"
    sign = "+" if signed and value > 0 else ("−" if value < 0 else "")
    size = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            scaled = size / limit
            text = f"{scaled:.0f}" if scaled >= 100 else f"{scaled:.1f}".rstrip("0").rstrip(".")
            return f"{sign}{text}{suffix}"
    text = f"{size:.0f}" if size >= 10 else f"{size:.1f}".rstrip("0").rstrip(".")
    return f"{sign}{text}"


def _percent(value: float, signed: bool = True, digits: int = 0) -> str:
    if not np.isfinite(value):
        return "n/a"
    text = f"{abs(value) * 100:,.{digits}f}%"
    if value < 0 and text.strip("0.,%"):
        return f"−{text}"
    return f"+{text}" if signed and value > 0 and text.strip("0.,%") else text


def _ratio(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.1f}×" if abs(value) >= 10 else f"{value:.2f}×"


def _period_phrase(ctx: ChartContext) -> str:
    start, end = ctx.period_start, ctx.period_end
    if start is not None and end is not None:
        return f"data {start:%Y-%m-%d} to {end:%Y-%m-%d}"
    if end is not None:
        return f"data to {end:%Y-%m-%d}"
    if start is not None:
        return f"data from {start:%Y-%m-%d}"
    return ""


def _run_phrase(ctx: ChartContext) -> str:
    stamp = ctx.generated_at
    stamp = stamp.replace(tzinfo=timezone.utc) if stamp.tzinfo is None else stamp.astimezone(timezone.utc)
    return f"run {stamp:%Y-%m-%d %H:%M} UTC"


def _compact_axis(axis) -> None:
    axis.set_major_formatter(mticker.FuncFormatter(lambda v, _pos: _compact(v)))


def _percent_axis(axis, digits: int = 0) -> None:
    axis.set_major_formatter(mticker.FuncFormatter(lambda v, _pos: _percent(v, signed=False, digits=digits)))


# --------------------------------------------------------------------------------------------
# Figure scaffolding


def _style() -> dict:
    rc = dict(sns.axes_style("whitegrid"))
    rc.update({
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans"],
        "font.size": 14,
        "axes.titlesize": 15,
        "axes.labelsize": 14,
        "axes.titlelocation": "left",
        "axes.edgecolor": "#c8c8c8",
        "grid.color": "#e6e6e6",
        "xtick.labelsize": 14,
        "ytick.labelsize": 14,
        "legend.fontsize": 13,
        "legend.frameon": False,
        "figure.facecolor": "white",
        "figure.constrained_layout.h_pad": 0.06,
        "figure.constrained_layout.w_pad": 0.08,
        "hatch.linewidth": 1.2,
    })
    return rc


def _new_chart(ctx: ChartContext, title: str, note: str | None = None) -> tuple[Figure, SubFigure]:
    """A 1200x700 figure with a header (title, period and run, optional note) and a body to draw in."""
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    header_in = 1.02 + (0.3 if note else 0.0)
    height_in = HEIGHT_PX / DPI
    header, body = fig.subfigures(2, 1, height_ratios=[header_in, height_in - header_in], hspace=0.0)

    def y_at(inches_from_top: float) -> float:
        return 1.0 - inches_from_top / header_in

    header.text(0.012, y_at(0.14), title, ha="left", va="top", fontsize=24, fontweight="bold", color=_INK)
    subtitle = " · ".join(p for p in (_period_phrase(ctx), _run_phrase(ctx)) if p)
    header.text(0.012, y_at(0.62), subtitle, ha="left", va="top", fontsize=15, color=_MUTED)
    if ctx.run_id:
        header.text(0.988, y_at(0.62), f"run id {str(ctx.run_id)[:12]}", ha="right", va="top", fontsize=11,
                    color="#9aa0a6")
    if note:
        header.text(0.012, y_at(0.94), note, ha="left", va="top", fontsize=13, color=_MUTED)
    return fig, body


def _tag(artist, channel: str) -> None:
    # Tests read channel colours back from the drawn artists through this id.
    artist.set_gid(f"channel:{channel}")


def _keep_texts_inside(fig: Figure, ax: Axes, texts: Sequence[Text], axis: str = "x") -> None:
    """Widen the data limits until every text (placed in data coordinates) sits inside the axes."""
    if not texts:
        return
    for _ in range(5):
        fig.draw_without_rendering()
        renderer = fig.canvas.get_renderer()
        box = ax.get_window_extent(renderer)
        extents = [t.get_window_extent(renderer) for t in texts if t.get_visible() and t.get_text()]
        if axis == "x":
            over_hi = max(e.x1 for e in extents) - box.x1
            over_lo = box.x0 - min(e.x0 for e in extents)
            lo, hi = ax.get_xlim()
            per_px = (hi - lo) / max(box.width, 1.0)
        else:
            over_hi = max(e.y1 for e in extents) - box.y1
            over_lo = box.y0 - min(e.y0 for e in extents)
            lo, hi = ax.get_ylim()
            per_px = (hi - lo) / max(box.height, 1.0)
        if over_hi <= -4 and over_lo <= -4:
            return
        if over_hi > -4:
            hi += (over_hi + 10) * per_px * 1.2
        if over_lo > -4:
            lo -= (over_lo + 10) * per_px * 1.2
        (ax.set_xlim if axis == "x" else ax.set_ylim)(lo, hi)


def _whisker_window(points: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[float, float]:
    """Limits that keep the points and zero readable: a whisker may reach 40 % of the core span
    beyond the outermost point, longer ones are cut there (and drawn with an arrow head)."""
    core_lo = min(float(np.nanmin(points)), 0.0)
    core_hi = max(float(np.nanmax(points)), 0.0)
    span = core_hi - core_lo or 1.0
    lo = np.nanmin(np.concatenate([lower, points])) if np.isfinite(lower).any() else core_lo
    hi = np.nanmax(np.concatenate([upper, points])) if np.isfinite(upper).any() else core_hi
    return max(float(lo), core_lo - 0.4 * span), min(float(hi), core_hi + 0.4 * span)


def _padded(window: tuple[float, float], share: float = 0.03) -> tuple[float, float]:
    pad = share * (window[1] - window[0] or 1.0)
    return window[0] - pad, window[1] + pad


def _draw_whiskers(ax: Axes, pos: np.ndarray, lower: np.ndarray, upper: np.ndarray, window: tuple[float, float],
                   color: str = _INK, size: float = 11) -> None:
    """Horizontal interval whiskers; an arrow head marks an end cut at the window."""
    lo, hi = window
    ok = np.isfinite(lower) & np.isfinite(upper)
    if not ok.any():
        return
    pos, lower, upper = pos[ok], lower[ok], upper[ok]
    left, right = np.clip(lower, lo, hi), np.clip(upper, lo, hi)
    ax.hlines(pos, left, right, colors=color, linewidth=1.8, zorder=4)
    for ends, cut, marker in ((left, lower < lo, "<"), (right, upper > hi, ">")):
        if (~cut).any():
            ax.scatter(ends[~cut], pos[~cut], marker="|", s=size * 12, color=color, linewidths=1.8, zorder=4)
        if cut.any():
            ax.scatter(ends[cut], pos[cut], marker=marker, s=size * 5, color=color, zorder=4)


def _right_labels(ax: Axes, pos: np.ndarray, labels: Sequence[str], title: str) -> Axes:
    """Per-row values as tick labels of a twin axis on the right, so the layout engine places them."""
    twin = ax.twinx()
    twin.set_ylim(ax.get_ylim())
    twin.set_yticks(pos, labels)
    twin.tick_params(axis="y", length=0, labelsize=13, labelcolor=_MUTED)
    twin.grid(False)
    twin.set_ylabel(title, color=_MUTED, fontsize=13, rotation=270, va="bottom", labelpad=10)
    for spine in twin.spines.values():
        spine.set_visible(False)
    return twin


def _grid_shape(n: int) -> tuple[int, int]:
    if n <= 3:
        return 1, n
    if n == 4:
        return 2, 2
    cols = 3 if n <= 6 else 4 if n <= 12 else 5 if n <= 20 else math.ceil(math.sqrt(n * 1.7))
    return math.ceil(n / cols), cols


def _date_axis(axis, start: pd.Timestamp, end: pd.Timestamp, max_ticks: int = 4) -> None:
    """At most ``max_ticks`` date ticks, labelled "Sep 01": on month starts when the range holds
    two or more, else every k days from the start."""
    months = pd.date_range(start.to_period("M").to_timestamp(), end, freq="MS")
    months = months[months >= start]
    if len(months) >= 2:
        ticks = months[::math.ceil(len(months) / max_ticks)]
    else:
        days = max((end - start).days, 1)
        ticks = pd.date_range(start, end, freq=f"{max(math.ceil(days / max_ticks), 1)}D")
    axis.set_major_locator(mticker.FixedLocator(mdates.date2num(ticks.to_pydatetime())))
    axis.set_major_formatter(mdates.DateFormatter("%b %d"))


def _trailing_mean(history: pd.DataFrame | None, forecast: pd.DataFrame | None) -> pd.DataFrame:
    """Trailing 7-day mean over history followed by forecast (forecast wins on shared days).

    Smoothing the two as one series lets the forecast line start where the history line ends
    and gives every forecast day a full window; at least 3 known days make a value, so a paused
    week shows as a gap rather than as one day's ratio. A forecast alone has no gaps and is
    averaged from its first day.
    """
    joined = forecast if history is None else history if forecast is None else forecast.combine_first(history)
    joined = joined.reindex(pd.date_range(joined.index.min(), joined.index.max(), freq="D"))
    return joined.rolling(SMOOTHING_DAYS, min_periods=1 if history is None else 3).mean()


def _history_window(history: pd.DataFrame, days: int) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    if history.empty:
        return None, None
    end = history["date"].max()
    return max(end - pd.Timedelta(days=days - 1), history["date"].min()), end


def _daily_wide(frame: pd.DataFrame, value: str, start: pd.Timestamp, end: pd.Timestamp, columns: Sequence[str],
                how: str = "mean") -> pd.DataFrame:
    """Date x channel on a complete daily grid (missing days NaN), duplicates aggregated by ``how``."""
    wide = frame.groupby(["date", "channel"])[value].agg(how).unstack("channel")
    return wide.reindex(index=pd.date_range(start, end, freq="D"), columns=list(columns))


# --------------------------------------------------------------------------------------------
# 1. ROI forecast


def _without_revenue(frame: pd.DataFrame) -> list[str]:
    """Channels whose ROI the forecast left empty because the data has no platform revenue for them
    (`method` says so; see ml.forecasting.NO_REVENUE_METHOD)."""
    if "method" not in frame.columns:
        return []
    said = frame["method"].astype("string").str.contains(NO_REVENUE_PHRASE, regex=False).fillna(False).astype(bool)
    return _channel_order(frame.loc[said, "channel"].astype(str).tolist())


def _nothing_to_draw(ctx: ChartContext, title: str, message: str) -> Figure:
    """A chart whose input exists but cannot have the measure (an optional raw column is absent): it says so."""
    fig, body = _new_chart(ctx, title)
    ax = body.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", fontsize=20, color=_MUTED,
            wrap=True)
    return fig


def _draw_roi_forecast(df: pd.DataFrame, ctx: ChartContext) -> Figure:
    chart, table = "roi_forecast", "ml_roi_forecast"
    numeric = ("horizon_days", "predicted_roi", "roi_lower", "roi_upper", "backtest_mape")
    without_revenue = _without_revenue(df) if isinstance(df, pd.DataFrame) and "channel" in df.columns else []
    data = _as_float(_as_channel(_prepare(df, chart, table, ("channel", *numeric)), chart, table), numeric, chart, table)
    colors = channel_colors(data["channel"])
    finite = data[np.isfinite(data["predicted_roi"])]
    if finite.empty and without_revenue:
        return _nothing_to_draw(ctx, "ROI forecast", f"no platform revenue in the data: ROI cannot be forecast "
                                f"({len(without_revenue)} channels)")
    if finite.empty:
        raise ValueError(f"{chart} chart: all {len(data)} rows of {table} have a NULL predicted_roi; no channel to draw")
    _one_row_per_channel(finite, chart, table)
    horizons = sorted(finite["horizon_days"].dropna().unique())
    if len(horizons) > 1:
        raise ValueError(f"{chart} chart: table {table} mixes horizons {horizons}; pass the rows of one horizon")
    data = finite.sort_values(["predicted_roi", "channel"], ascending=[True, False], kind="stable")

    horizon = f"next {int(horizons[0])} days" if horizons else "forecast horizon"
    missing = [c for c in without_revenue if c not in set(finite["channel"])]
    fig, body = _new_chart(ctx, f"ROI forecast, {horizon}",
                           "ROI = (revenue − spend) / spend · whiskers: forecast interval"
                           + (f" · no platform revenue in the data for {', '.join(missing)}" if missing else ""))
    ax = body.subplots()
    pos = np.arange(len(data), dtype=float)
    roi, lower, upper = (data[c].to_numpy() for c in ("predicted_roi", "roi_lower", "roi_upper"))
    bars = ax.barh(pos, roi, height=0.62, color=[colors[c] for c in data["channel"]], zorder=2)
    for bar, channel in zip(bars, data["channel"]):
        _tag(bar, channel)
    window = _whisker_window(roi, lower, upper)
    _draw_whiskers(ax, pos, lower, upper, window)
    ax.axvline(0.0, color=_INK, linewidth=1.4, zorder=3)

    ends_hi = np.fmax(roi, np.where(np.isfinite(upper), np.clip(upper, *window), roi))
    ends_lo = np.fmin(roi, np.where(np.isfinite(lower), np.clip(lower, *window), roi))
    labels = []
    for y, value, hi, lo in zip(pos, roi, ends_hi, ends_lo):
        if value >= 0:
            labels.append(ax.annotate(_percent(value), (hi, y), xytext=(8, 0), textcoords="offset points",
                                      va="center", ha="left", fontsize=14, fontweight="bold", color=_INK))
        else:
            labels.append(ax.annotate(_percent(value), (lo, y), xytext=(-8, 0), textcoords="offset points",
                                      va="center", ha="right", fontsize=14, fontweight="bold", color=_INK))
    ax.set_yticks(pos, data["channel"].tolist())
    ax.set_ylim(-0.6, len(data) - 0.4)
    ax.set_xlim(*_padded((min(window[0], 0.0), max(window[1], 0.0))))
    _percent_axis(ax.xaxis)
    ax.xaxis.set_major_locator(mticker.MaxNLocator(6))
    ax.set_xlabel("predicted ROI")
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0)
    mape = [f"{_percent(v, signed=False)}" for v in data["backtest_mape"]]
    twin = _right_labels(ax, pos, mape, "backtest error (MAPE)")
    _keep_texts_inside(fig, ax, labels)
    twin.set_ylim(ax.get_ylim())
    return fig


# --------------------------------------------------------------------------------------------
# 2. ROI time series


def _robust_ylim(core: np.ndarray, band: np.ndarray) -> tuple[float, float] | None:
    """Y limits showing the lines whole and the band as far as it stays informative: at most
    1.5 core spans (or half the core's magnitude, if larger) beyond the lines."""
    core = core[np.isfinite(core)]
    if core.size == 0:
        return None
    lo, hi = float(core.min()), float(core.max())
    reach = max(1.5 * (hi - lo), 0.5 * float(np.abs(core).max()), 1e-9)
    band = band[np.isfinite(band)]
    if band.size:
        lo, hi = max(min(lo, float(band.min())), lo - reach), min(max(hi, float(band.max())), hi + reach)
    if hi - lo < 1e-9:
        lo, hi = lo - reach, hi + reach
    pad = 0.06 * (hi - lo)
    return lo - pad, hi + pad


def _draw_roi_timeseries(df: pd.DataFrame, ctx: ChartContext) -> Figure:
    chart, table = "roi_timeseries", "ml_roi_timeseries"
    data = _prepare(df, chart, table, ("date", "channel", "roi", "is_forecast", "roi_lower", "roi_upper"))
    data = _as_float(_as_flag(_as_dates(_as_channel(data, chart, table), chart, table), chart, table),
                     ("roi", "roi_lower", "roi_upper"), chart, table)
    colors = channel_colors(data["channel"])
    channels = _channel_order(data["channel"].tolist())
    history, forecast = data[~data["is_forecast"]], data[data["is_forecast"]]
    start, end = _history_window(history, HISTORY_DAYS)
    if history["roi"].notna().sum() == 0 and forecast["roi"].notna().sum() == 0:
        if not forecast.empty:
            # Forecast rows always carry ROI when there is platform revenue (ml.forecasting), so this is the
            # data without any: an optional column of the ad export.
            return _nothing_to_draw(ctx, "Daily ROI", "no platform revenue in the data: no ROI to draw")
        raise ValueError(f"{chart} chart: every roi in {table} ({len(data)} rows) is NULL; nothing to draw")

    hist = None
    if start is not None:
        hist = _daily_wide(history, "roi", start - pd.Timedelta(days=SMOOTHING_DAYS - 1), end, channels)
    fc_days = forecast["date"].nunique()
    fc_start, fc_end = (forecast["date"].min(), forecast["date"].max()) if fc_days else (None, None)
    smooth = _trailing_mean(hist, None).loc[start:end] if hist is not None else None
    # Forecast lines and bands start at the last observed day (where the bounds equal the value),
    # so each forecast visibly continues its history.
    joint = min(end, fc_start) if hist is not None and fc_days else fc_start
    points = {
        col: _trailing_mean(hist, _daily_wide(forecast, col, fc_start, fc_end, channels)).loc[joint:fc_end]
        for col in ("roi", "roi_lower", "roi_upper")
    } if fc_days else {}
    x_start = start if start is not None else fc_start
    x_end = fc_end if fc_days else end

    shown_days = (end - start).days + 1 if start is not None else 0
    parts = [f"last {shown_days} days"] if shown_days else []
    parts += [f"{fc_days}-day forecast"] if fc_days else []
    fig, body = _new_chart(ctx, "Daily ROI: " + " and ".join(parts),
                           f"{SMOOTHING_DAYS}-day averages, own scale per channel")
    rows, cols = _grid_shape(len(channels))
    axes = body.subplots(rows, cols, sharex=True, squeeze=False)
    small = len(channels) > 6
    break_even_drawn = False
    for i, ax in enumerate(axes.flat):
        if i >= len(channels):
            ax.set_visible(False)
            above = axes.flat[i - cols] if i - cols >= 0 else None
            if above is not None:
                above.xaxis.set_tick_params(labelbottom=True)
            continue
        channel = channels[i]
        color = colors[channel]
        core, band = [], []
        if smooth is not None:
            line = ax.plot(smooth.index, smooth[channel].to_numpy(), color=color, linewidth=2.2)[0]
            _tag(line, channel)
            core.append(smooth[channel].to_numpy())
        if fc_days and points["roi"][channel].notna().any():
            fc_roi, fc_low, fc_high = (points[c][channel] for c in ("roi", "roi_lower", "roi_upper"))
            ax.fill_between(fc_roi.index, fc_low, fc_high, color=color, alpha=_FORECAST_ALPHA, linewidth=0)
            ax.plot(fc_roi.index, fc_roi, color=color, linewidth=2.2, linestyle=(0, (3, 1.5)))
            core.append(fc_roi.to_numpy())
            band += [fc_low.to_numpy(), fc_high.to_numpy()]
        if fc_days:
            ax.axvline(fc_start, color="#9aa0a6", linewidth=1.0, linestyle=":")
        limits = _robust_ylim(np.concatenate(core) if core else np.array([]),
                              np.concatenate(band) if band else np.array([]))
        if limits:
            ax.set_ylim(*limits)
        if limits is None or limits[0] < 0 < limits[1]:
            ax.axhline(0.0, color="#5f6368", linewidth=1.0)
            break_even_drawn = True
        ax.set_title(channel, fontsize=14 if small else 15, fontweight="bold", color=_INK, pad=4)
        _percent_axis(ax.yaxis)
        ax.yaxis.set_major_locator(mticker.MaxNLocator(3))
        ax.tick_params(labelsize=11 if small else 13)
        _date_axis(ax.xaxis, x_start, x_end, 3 if cols >= 4 else 4)
        ax.set_xlim(x_start, x_end)
    handles = [Line2D([], [], color=_MUTED, linewidth=2.2, label="history")] if smooth is not None else []
    if fc_days:
        handles += [
            Line2D([], [], color=_MUTED, linewidth=2.2, linestyle=(0, (3, 1.5)), label="forecast"),
            Patch(color=_MUTED, alpha=0.3, label="forecast interval"),
        ]
    if break_even_drawn:
        handles.append(Line2D([], [], color="#5f6368", linewidth=1.0, label="break-even (0%)"))
    body.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=13)
    return fig


# --------------------------------------------------------------------------------------------
# 3. Reach and CTR


def _draw_reach_ctr(df: pd.DataFrame, ctx: ChartContext) -> Figure:
    chart, table = "reach_ctr", "ml_reach_ctr_timeseries"
    numeric = ("reach", "impressions", "clicks", "reach_lower", "reach_upper", "ctr_lower", "ctr_upper")
    data = _prepare(df, chart, table, ("date", "channel", "is_forecast", *numeric))
    data = _as_flag(_as_dates(_as_channel(data, chart, table), chart, table), chart, table)
    data = _as_float(data, numeric, chart, table)
    colors = channel_colors(data["channel"])
    channels = _channel_order(data["channel"].tolist())
    history, forecast = data[~data["is_forecast"]], data[data["is_forecast"]]
    start, end = _history_window(history, HISTORY_DAYS)
    # Reach is optional in the ad export: a channel without any is left out of the stack (not drawn as
    # zeros) and named in the note; CTR still covers every channel.
    reporting = set(data.loc[data["reach"].notna(), "channel"])
    reach_channels = [c for c in channels if c in reporting]
    no_reach = [c for c in channels if c not in reporting]
    if not reach_channels:
        reach_note = "no reach in the data · CTR: clicks / impressions, all channels (right)"
    else:
        reach_note = "reach: sum of channels (left)" + (
            f", no reach in the data for {', '.join(no_reach)}" if no_reach else "") + \
            " · CTR: clicks / impressions, all channels (right)"

    parts = [f"last {(end - start).days + 1} days"] if start is not None else []
    parts += [f"{forecast['date'].nunique()}-day forecast"] if not forecast.empty else []
    fig, body = _new_chart(
        ctx, "Reach and CTR: " + " and ".join(parts), f"{SMOOTHING_DAYS}-day averages · {reach_note}",
    )
    ax = body.subplots()
    ctr_ax = ax.twinx()
    # The twin axes sit on top; keep the stack's axes drawable below it and the CTR line above.
    ctr_ax.set_zorder(ax.get_zorder() + 1)
    ctr_ax.patch.set_visible(False)
    reach_top, ctr_line, ctr_band = [], [], []

    def total(frame: pd.DataFrame | None) -> pd.DataFrame | None:
        return None if frame is None else frame.sum(axis=1, min_count=1).to_frame("total")

    hist: dict[str, pd.DataFrame] = {}
    fc: dict[str, pd.DataFrame] = {}
    if start is not None:
        pad_start = start - pd.Timedelta(days=SMOOTHING_DAYS - 1)
        hist = {m: _daily_wide(history, m, pad_start, end, channels, "sum") for m in ("clicks", "impressions")}
        hist["reach"] = _daily_wide(history, "reach", pad_start, end, reach_channels, "sum")
    fc_start = fc_end = None
    if not forecast.empty:
        fc_start, fc_end = forecast["date"].min(), forecast["date"].max()
        fc = {m: _daily_wide(forecast, m, fc_start, fc_end, channels, "sum") for m in ("impressions", "clicks")}
        fc.update({m: _daily_wide(forecast, m, fc_start, fc_end, reach_channels, "sum")
                   for m in ("reach", "reach_lower", "reach_upper")})
        weighted = forecast.assign(low=forecast["ctr_lower"] * forecast["impressions"],
                                   high=forecast["ctr_upper"] * forecast["impressions"])
        fc["clicks_low"] = _daily_wide(weighted, "low", fc_start, fc_end, channels, "sum")
        fc["clicks_high"] = _daily_wide(weighted, "high", fc_start, fc_end, channels, "sum")

    reach = _trailing_mean(hist.get("reach"), fc.get("reach")).dropna(how="all").fillna(0.0)
    impressions = _trailing_mean(total(hist.get("impressions")), total(fc.get("impressions")))["total"]
    impressions = impressions.where(impressions > 0)

    def ctr_of(clicks_key: str) -> pd.Series:
        return _trailing_mean(total(hist.get("clicks")), total(fc.get(clicks_key)))["total"] / impressions

    ctr = ctr_of("clicks")
    if start is not None and reach_channels:
        past = reach.loc[start:end]
        stack = ax.stackplot(past.index, past.to_numpy().T, colors=[colors[c] for c in reach_channels], alpha=0.9,
                             linewidth=0)
        for poly, channel in zip(stack, reach_channels):
            _tag(poly, channel)
        reach_top.append(past.sum(axis=1).to_numpy())
    if start is not None:
        ctr_ax.plot(ctr.loc[start:end].index, ctr.loc[start:end].to_numpy(), color=_INK, linewidth=2.6)
        ctr_line.append(ctr.loc[start:end].to_numpy())
    if fc_start is not None:
        joint = min(end, fc_start) if start is not None else fc_start
        dates = pd.date_range(joint, fc_end, freq="D")
        if reach_channels:
            ahead = reach.loc[joint:fc_end]
            ax.stackplot(dates, ahead.to_numpy().T, colors=[colors[c] for c in reach_channels], alpha=0.4, linewidth=0)
            # Summing channel bounds treats channels as moving together: a deliberately wide band.
            low = _trailing_mean(total(hist.get("reach")), total(fc["reach_lower"]))["total"].loc[joint:fc_end]
            high = _trailing_mean(total(hist.get("reach")), total(fc["reach_upper"]))["total"].loc[joint:fc_end]
            ax.plot(low.index, low, color=_INK, linewidth=1.3, linestyle=":")
            ax.plot(high.index, high, color=_INK, linewidth=1.3, linestyle=":")
            ax.plot(dates, ahead.sum(axis=1), color=_INK, linewidth=1.4, linestyle=(0, (3, 1.5)))
            reach_top += [ahead.sum(axis=1).to_numpy(), high.to_numpy()]
        fc_ctr = ctr.reindex(dates)
        fc_low, fc_high = ctr_of("clicks_low").reindex(dates), ctr_of("clicks_high").reindex(dates)
        ctr_ax.fill_between(dates, fc_low, fc_high, color=_INK, alpha=0.12, linewidth=0)
        ctr_ax.plot(dates, fc_ctr, color=_INK, linewidth=2.6, linestyle=(0, (3, 1.5)))
        ctr_line.append(fc_ctr.to_numpy())
        ctr_band += [fc_low.to_numpy(), fc_high.to_numpy()]
        ax.axvline(fc_start, color="#9aa0a6", linewidth=1.2, linestyle=":")

    top = np.concatenate(reach_top) if reach_top else np.array([])
    top = float(np.nanmax(top)) if np.isfinite(top).any() else 0.0
    # Reach fills the lower ~55 % and CTR (with its band) the upper ~40 %, so neither hides the other.
    ax.set_ylim(0.0, (top or 1.0) / 0.55)
    line = np.concatenate(ctr_line) if ctr_line else np.array([])
    line = line[np.isfinite(line)]
    if line.size:
        band = np.concatenate(ctr_band) if ctr_band else np.array([])
        band = band[np.isfinite(band)]
        lo, hi = float(line.min()), float(line.max())
        span = max(hi - lo, 0.25 * hi, 1e-6)
        if band.size:
            lo, hi = max(min(lo, float(band.min())), lo - span), min(max(hi, float(band.max())), hi + span)
        top_ctr = hi + 0.08 * (hi - lo + 1e-12)
        ctr_ax.set_ylim(max(top_ctr - (top_ctr - lo) / 0.42, 0.0), top_ctr)
    _compact_axis(ax.yaxis)
    ax.yaxis.set_major_locator(mticker.MaxNLocator(5))
    ctr_ax.yaxis.set_major_locator(mticker.MaxNLocator(5))
    digits = 2 if line.size and line.max() < 0.1 else 1
    _percent_axis(ctr_ax.yaxis, digits)
    if reach_channels:
        ax.set_ylabel("reach per day")
    else:
        ax.yaxis.set_major_formatter(mticker.NullFormatter())
        ax.text(0.5, 0.27, "no reach in the data", transform=ax.transAxes, ha="center", va="center",
                fontsize=18, color=_MUTED)
    ctr_ax.set_ylabel("CTR", rotation=270, va="bottom")
    ctr_ax.grid(False)
    x_start = max(start, reach.index.min()) if start is not None and reach_channels else start or fc_start
    x_end = fc_end if fc_end is not None else end
    ax.set_xlim(x_start, x_end)
    _date_axis(ax.xaxis, x_start, x_end, 6)
    handles = [Patch(color=colors[c], label=c) for c in reversed(reach_channels)]
    handles.append(Line2D([], [], color=_INK, linewidth=2.6, label="CTR"))
    if fc_start is not None:
        handles.append(Line2D([], [], color=_INK, linewidth=2.0, linestyle=(0, (3, 1.5)), label="forecast"))
        if reach_channels:
            handles.append(Line2D([], [], color=_INK, linewidth=1.3, linestyle=":", label="reach interval"))
        handles.append(Patch(color=_INK, alpha=0.15, label="CTR interval"))
    body.legend(handles=handles, loc="outside right upper", fontsize=12 if len(channels) > 8 else 13)
    return fig


# --------------------------------------------------------------------------------------------
# 4. Budget recommendation


def _draw_budget_recommendation(df: pd.DataFrame, ctx: ChartContext) -> Figure:
    chart, table = "budget_recommendation", "ml_budget_recommendation"
    numeric = (
        "current_spend", "recommended_spend", "current_expected_revenue", "recommended_expected_revenue",
        "recommended_expected_revenue_lower", "recommended_expected_revenue_upper",
        "marginal_roas_current", "marginal_roas_recommended",
    )
    data = _prepare(df, chart, table, ("channel", *numeric))
    data = _as_float(_as_channel(data, chart, table), numeric, chart, table)
    is_total = data["channel"].str.strip().str.upper() == "TOTAL"
    rows, total = data[~is_total], data[is_total]
    if rows.empty:
        raise ValueError(f"{chart} chart: table {table} has only the TOTAL row; it needs one row per channel")
    if len(total) > 1:
        raise ValueError(f"{chart} chart: table {table} has {len(total)} TOTAL rows; expected at most one")
    _one_row_per_channel(rows, chart, table)
    colors = channel_colors(rows["channel"])
    rows = rows.sort_values(["recommended_spend", "channel"], ascending=[True, False], kind="stable")

    if len(total):
        t = total.iloc[0]
        current_rev, new_rev = t["current_expected_revenue"], t["recommended_expected_revenue"]
        rev_lo, rev_hi = t["recommended_expected_revenue_lower"], t["recommended_expected_revenue_upper"]
        spend_now, spend_new = t["current_spend"], t["recommended_spend"]
    else:
        current_rev, new_rev = rows["current_expected_revenue"].sum(), rows["recommended_expected_revenue"].sum()
        rev_lo = rev_hi = np.nan  # channel intervals do not add up to an interval of the total
        spend_now, spend_new = rows["current_spend"].sum(), rows["recommended_spend"].sum()
    delta = new_rev - current_rev
    rel = delta / current_rev if current_rev else np.nan
    title = f"Budget shift: revenue {_compact(delta, signed=True)}"
    title += f" ({_percent(rel, digits=1)})" if np.isfinite(rel) else ""
    interval = (f"interval {_compact(rev_lo - current_rev, signed=True)} to {_compact(rev_hi - current_rev, signed=True)}"
                if np.isfinite(rev_lo) and np.isfinite(rev_hi) else "no interval for the total")
    note = f"expected revenue change, {interval} · total spend {_compact(spend_now)} → {_compact(spend_new)}"
    fig, body = _new_chart(ctx, title, note)
    ax = body.subplots()

    pos = np.arange(len(rows), dtype=float)
    current, recommended = rows["current_spend"].to_numpy(), rows["recommended_spend"].to_numpy()
    palette = [colors[c] for c in rows["channel"]]
    height = 0.38
    old = ax.barh(pos + height / 2, current, height=height, color=palette, alpha=0.35, edgecolor=palette,
                  linewidth=1.2, zorder=2)
    new = ax.barh(pos - height / 2, recommended, height=height, color=palette, zorder=2)
    for a, b, channel in zip(old, new, rows["channel"]):
        _tag(a, channel)
        _tag(b, channel)
    change = np.divide(recommended - current, current, out=np.full(len(rows), np.nan), where=current > 0)
    labels = []
    for y, now, rec, c in zip(pos, current, recommended, change):
        if np.isfinite(c):
            text, color = _percent(c), (_UP if c > 0.0005 else _DOWN if c < -0.0005 else _MUTED)
        else:
            text, color = ("new" if rec > 0 else "—"), _UP if rec > 0 else _MUTED
        labels.append(ax.annotate(text, (max(now, rec), y), xytext=(8, 0), textcoords="offset points",
                                  va="center", ha="left", fontsize=14, fontweight="bold", color=color))
    ax.set_yticks(pos, rows["channel"].tolist())
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlim(0.0, max(float(np.nanmax(np.r_[current, recommended])), 1e-9) * 1.05)
    _compact_axis(ax.xaxis)
    ax.xaxis.set_major_locator(mticker.MaxNLocator(6))
    ax.set_xlabel("spend")
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0)
    mroas = [
        f"{_ratio(a).rstrip('×')} → {_ratio(b).rstrip('×')}" if np.isfinite(a) and np.isfinite(b) else "n/a"
        for a, b in zip(rows["marginal_roas_current"], rows["marginal_roas_recommended"])
    ]
    twin = _right_labels(ax, pos, mroas, "marginal ROAS")
    body.legend(
        handles=[Patch(facecolor="#9aa0a6", alpha=0.35, edgecolor="#9aa0a6", label="current spend"),
                 Patch(facecolor="#5f6368", label="recommended spend")],
        loc="outside lower center", ncols=2, fontsize=13,
    )
    _keep_texts_inside(fig, ax, labels)
    twin.set_ylim(ax.get_ylim())
    return fig


# --------------------------------------------------------------------------------------------
# 5. Attribution comparison


def _draw_attribution_comparison(df: pd.DataFrame, ctx: ChartContext) -> Figure:
    chart, table = "attribution_comparison", "channel_attribution"
    data = _prepare(df, chart, table, ("model", "channel", "share", "share_lower", "share_upper"))
    data = _as_float(_as_channel(_as_channel(data, chart, table), chart, table, "model"),
                     ("share", "share_lower", "share_upper"), chart, table)
    dupes = data.duplicated(["model", "channel"])
    if dupes.any():
        pairs = data.loc[dupes, ["model", "channel"]].drop_duplicates().head(3).to_records(index=False).tolist()
        raise ValueError(f"{chart} chart: table {table} has more than one row for (model, channel) {pairs}; "
                         "pass the rows of one run")
    models = [m for m in ATTRIBUTION_MODELS if m in set(data["model"])]
    models += sorted(set(data["model"]) - set(models))
    share = data.pivot(index="channel", columns="model", values="share").reindex(columns=models)
    low = data.pivot(index="channel", columns="model", values="share_lower").reindex(index=share.index, columns=models)
    high = data.pivot(index="channel", columns="model", values="share_upper").reindex(index=share.index, columns=models)
    order = share.mean(axis=1).sort_values(ascending=False, kind="stable").index
    share, low, high = share.loc[order], low.loc[order], high.loc[order]
    if not np.isfinite(share.to_numpy()).any():
        raise ValueError(f"{chart} chart: every share in {table} ({len(data)} rows) is NULL; nothing to draw")

    has_ci = np.isfinite(low.to_numpy()) & np.isfinite(high.to_numpy())
    fig, body = _new_chart(ctx, "Attribution: channel share by model",
                           "share of each model's credit" + (" · small: bootstrap interval" if has_ci.any() else ""))
    ax = body.subplots()
    values = share.to_numpy()
    vmax = float(np.nanmax(values)) or 1.0
    sns.heatmap(share, ax=ax, cmap="Blues", vmin=0.0, vmax=vmax, cbar=False, linewidths=1.5, linecolor="white",
                annot=False)
    n_rows, n_cols = values.shape
    big = 14 if n_rows <= 8 else 12
    for i in range(n_rows):
        for j in range(n_cols):
            v = values[i, j]
            ink = "white" if np.isfinite(v) and v / vmax > 0.55 else _INK
            if not np.isfinite(v):
                ax.text(j + 0.5, i + 0.5, "–", ha="center", va="center", fontsize=big, color=_MUTED)
                continue
            label = _percent(v, signed=False)
            if has_ci[i, j]:
                ax.text(j + 0.5, i + 0.45, label, ha="center", va="bottom", fontsize=big, fontweight="bold", color=ink)
                ci = f"{low.iat[i, j] * 100:.0f}–{high.iat[i, j] * 100:.0f}"
                ax.text(j + 0.5, i + 0.5, ci, ha="center", va="top", fontsize=big - 3, color=ink)
            else:
                ax.text(j + 0.5, i + 0.5, label, ha="center", va="center", fontsize=big, fontweight="bold", color=ink)
    ax.xaxis.tick_top()
    ax.set_xticks(np.arange(n_cols) + 0.5, [_MODEL_LABELS.get(m, m.replace("_", "\n")) for m in models], rotation=0)
    ax.set_yticks(np.arange(n_rows) + 0.5, share.index.tolist(), rotation=0)
    ax.tick_params(axis="both", length=0, labelsize=13)
    ax.tick_params(axis="y", pad=22)
    ax.set_xlabel("")
    ax.set_ylabel("")
    # Colour swatches tie each row to the channel's bars in the other charts; sized in points so
    # they keep their place beside the labels however wide the cells are.
    colors = channel_colors(data["channel"])
    for i, channel in enumerate(share.index):
        swatch = ax.annotate("■", xy=(0.0, i + 0.5), xycoords=ax.get_yaxis_transform(), xytext=(-11, 0),
                             textcoords="offset points", ha="center", va="center", fontsize=17, color=colors[channel])
        _tag(swatch, channel)
    return fig


# --------------------------------------------------------------------------------------------
# 6. MMM ROAS


def _not_identifiable(value: object) -> bool:
    """True only for an explicit "no" in mmm_channel_roas.identifiable (a missing verdict is no verdict)."""
    if isinstance(value, str):
        return value.strip().lower() in ("false", "f", "0", "no")
    return value is not None and not pd.isna(value) and not bool(value)


def _short_reason(reason: object) -> str:
    """The review's first reason without its figures: "spend hardly varies (coefficient ...); ..." ->
    "spend hardly varies, +1 more"."""
    parts = [p.strip() for p in str(reason or "").split("; ") if p.strip()]
    if not parts:
        return ""
    first = parts[0].split(" (")[0].split(": ")[0].removeprefix("adstocked ")
    return first + (f", +{len(parts) - 1} more" if len(parts) > 1 else "")


def _draw_mmm_roas(df: pd.DataFrame, ctx: ChartContext) -> Figure:
    chart, table = "mmm_roas", "mmm_channel_roas"
    numeric = ("roas", "roas_lower", "roas_upper", "marginal_roas", "marginal_roas_lower", "marginal_roas_upper")
    # The review gate's verdict is optional: a table without it draws every channel as identifiable.
    review = [c for c in ("identifiable", "review_reason") if c in getattr(df, "columns", ())]
    data = _prepare(df, chart, table, ("channel", *numeric, *review))
    data = _as_float(_as_channel(data, chart, table), numeric, chart, table)
    flagged_rows = data["identifiable"].map(_not_identifiable) if "identifiable" in data else pd.Series(False, data.index)
    data = data.assign(
        _flagged=flagged_rows.astype(bool),
        _why=(data["review_reason"] if "review_reason" in data else pd.Series("", data.index)).map(_short_reason),
    )
    colors = channel_colors(data["channel"])
    data = data[np.isfinite(data["roas"]) | np.isfinite(data["marginal_roas"])]
    if data.empty:
        raise ValueError(f"{chart} chart: every roas and marginal_roas in {table} is NULL; nothing to draw")
    _one_row_per_channel(data, chart, table)
    data = data.sort_values(["roas", "channel"], ascending=[True, False], kind="stable", na_position="first")

    fig, body = _new_chart(ctx, "Media mix: average vs marginal ROAS",
                           "revenue per unit of spend · marginal: return on the next unit · whiskers: bootstrap interval")
    ax = body.subplots()
    pos = np.arange(len(data), dtype=float)
    avg, marg = data["roas"].to_numpy(), data["marginal_roas"].to_numpy()
    points = np.r_[avg, marg, 1.0]
    window = _whisker_window(points, data[["roas_lower", "marginal_roas_lower"]].to_numpy().ravel(),
                             data[["roas_upper", "marginal_roas_upper"]].to_numpy().ravel())
    window = (min(window[0], 0.0), window[1])
    palette = [colors[c] for c in data["channel"]]
    height = 0.38
    bars = ax.barh(pos + height / 2, np.nan_to_num(avg), height=height, color=palette, zorder=2)
    light = ax.barh(pos - height / 2, np.nan_to_num(marg), height=height, color=palette, alpha=0.35,
                    edgecolor=palette, hatch="//", linewidth=1.2, zorder=2)
    for a, b, channel in zip(bars, light, data["channel"]):
        _tag(a, channel)
        _tag(b, channel)
    flagged = data["_flagged"].to_numpy()
    for i in np.flatnonzero(flagged):
        # Not identifiable: the channel keeps its colour (pale), crossed out in grey.
        for bar, alpha in ((bars[i], 0.35), (light[i], 0.15)):
            bar.set_alpha(alpha)
            bar.set_hatch("xx")
            bar.set_edgecolor(_UNIDENTIFIED)
            bar.set_linestyle((0, (3, 2)))
            bar.set_linewidth(1.4)
    _draw_whiskers(ax, pos + height / 2, data["roas_lower"].to_numpy(), data["roas_upper"].to_numpy(), window, size=8)
    _draw_whiskers(ax, pos - height / 2, data["marginal_roas_lower"].to_numpy(), data["marginal_roas_upper"].to_numpy(),
                   window, size=8)
    ax.axvline(1.0, color=_DOWN, linewidth=1.8, linestyle=(0, (4, 2)), zorder=5)
    ax.set_yticks(pos, data["channel"].tolist())
    for label, is_flagged in zip(ax.get_yticklabels(), flagged):
        if is_flagged:
            label.set_color(_UNIDENTIFIED)
    ax.set_ylim(-0.6, len(data) - 0.4)
    ax.set_xlim(window[0], _padded(window)[1])
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_major_locator(mticker.MaxNLocator(7))
    ax.set_xlabel("ROAS")
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0)
    notes = []
    for i in np.flatnonzero(flagged):
        reach = np.nanmax(np.r_[avg[i], marg[i], data["roas_upper"].iat[i], data["marginal_roas_upper"].iat[i], 0.0])
        why = data["_why"].iat[i]
        notes.append(ax.annotate(
            "not identifiable" + (f": {why}" if why else ""), (min(float(reach), window[1]), pos[i]),
            xytext=(8, 0), textcoords="offset points", va="center", ha="left", fontsize=12, fontstyle="italic",
            color=_UNIDENTIFIED, zorder=6, bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 1.5},
        ))
    twin = _right_labels(ax, pos, [f"{_ratio(a)} / {_ratio(m)}" for a, m in zip(avg, marg)], "average / marginal")
    handles = [Patch(facecolor="#5f6368", label="average ROAS"),
               Patch(facecolor="#9aa0a6", alpha=0.35, edgecolor="#5f6368", hatch="//", label="marginal ROAS"),
               Line2D([], [], color=_DOWN, linewidth=1.8, linestyle=(0, (4, 2)), label="break-even (1.0)")]
    if flagged.any():
        handles.append(Patch(facecolor="#ffffff", edgecolor=_UNIDENTIFIED, hatch="xx", linestyle=(0, (3, 2)),
                             label="not identifiable: ROAS not supported by the data"))
    body.legend(handles=handles, loc="outside lower center", ncols=2 if flagged.any() else 3, fontsize=13)
    _keep_texts_inside(fig, ax, notes)
    twin.set_ylim(ax.get_ylim())
    return fig


# --------------------------------------------------------------------------------------------
# 7. Revenue contribution over time


def _draw_revenue_contribution(df: pd.DataFrame, ctx: ChartContext) -> Figure:
    chart, table = "revenue_contribution", "mmm revenue decomposition"
    data = _prepare(df, chart, table, ("date", "component", "value"))
    data = _as_float(_as_dates(_as_channel(data, chart, table, "component"), chart, table), ("value",), chart, table)
    wide = data.groupby(["date", "component"])["value"].sum().unstack("component")
    wide = wide.reindex(pd.date_range(wide.index.min(), wide.index.max(), freq="D")).fillna(0.0)
    baseline = [c for c in wide.columns if c.strip().lower() == "baseline"]
    media = [c for c in wide.columns if c not in baseline]
    colors = channel_colors(list(wide.columns))
    media = sorted(media, key=lambda c: (-wide[c].sum(), c))
    order = baseline + media

    negative = bool((wide[order].to_numpy() < 0).any())
    # A stack cannot show a negative layer honestly; it is drawn at zero and the note says so.
    shown = wide[order].clip(lower=0.0)
    weekly = len(shown) > WEEKLY_AFTER_DAYS
    if weekly:
        last_day = shown.index.max()
        shown = shown.resample("W-MON", label="left", closed="left").mean()
        # A step plot ends where its last row starts; repeat that row where its week ends.
        closing = min(shown.index.max() + pd.Timedelta(days=7), last_day + pd.Timedelta(days=1))
        shown = pd.concat([shown, shown.iloc[[-1]].set_axis([closing])])
    totals = wide[order].sum()
    grand = float(totals.sum())
    media_share = float(totals[media].sum()) / grand if grand > 0 else np.nan
    title = "Revenue drivers"
    title += f": media {_percent(media_share, signed=False)} of revenue" if np.isfinite(media_share) else ""
    note = "media mix model decomposition · " + ("weekly average of daily revenue" if weekly else "daily revenue")
    if negative:
        note += " · negative contributions drawn at 0"
    fig, body = _new_chart(ctx, title, note)
    ax = body.subplots()
    stack = ax.stackplot(shown.index, shown.to_numpy().T, colors=[colors[c] for c in order], alpha=0.92,
                         linewidth=0.4, edgecolor="white", step="post" if weekly else None)
    for poly, component in zip(stack, order):
        if component in media:
            _tag(poly, component)
    ax.set_ylim(0.0, float(shown.sum(axis=1).max()) * 1.05 or 1.0)
    ax.margins(x=0)
    _compact_axis(ax.yaxis)
    ax.yaxis.set_major_locator(mticker.MaxNLocator(6))
    ax.set_ylabel("revenue per day")
    _date_axis(ax.xaxis, shown.index.min(), shown.index.max(), 8)
    shares = totals / grand if grand > 0 else totals * np.nan
    handles = [Patch(color=colors[c], label=f"{c} {_percent(shares[c], signed=False)}") for c in reversed(order)]
    body.legend(handles=handles, loc="outside right upper", fontsize=12 if len(order) > 9 else 13)
    return fig


# --------------------------------------------------------------------------------------------
# 8. Planned-spend scenarios


def _scenario_label(name: str) -> str:
    """``current_minus_20pct`` -> ``current −20%``; other names with spaces for underscores."""
    text = str(name)
    for word, sign in (("_minus_", " −"), ("_plus_", " +")):
        if word in text and text.endswith("pct"):
            head, _, amount = text.partition(word)
            text = f"{head}{sign}{amount.removesuffix('pct')}%"
    return text.replace("_", " ")


def _draw_spend_scenarios(df: pd.DataFrame, ctx: ChartContext) -> Figure:
    chart, table = "spend_scenarios", "ml_spend_scenarios"
    numeric = ("horizon_days", "planned_spend", "incremental_revenue", "incremental_revenue_lower",
               "incremental_revenue_upper", "baseline_revenue", "total_revenue", "total_revenue_lower",
               "total_revenue_upper", "roi", "roi_lower", "roi_upper")
    data = _prepare(df, chart, table, ("scenario", "channel", *numeric))
    data = _as_float(_as_channel(_as_channel(data, chart, table), chart, table, "scenario"), numeric, chart, table)
    is_total = data["channel"].str.strip().str.upper() == "TOTAL"
    totals, rows = data[is_total], data[~is_total]
    if totals.empty or rows.empty:
        raise ValueError(f"{chart} chart: table {table} needs one TOTAL row and the channel rows of every scenario")
    duplicated = data.loc[data.duplicated(["scenario", "channel"]), "scenario"].unique().tolist()
    if duplicated:
        raise ValueError(f"{chart} chart: scenario(s) {duplicated[:5]} repeat a channel in {table}; "
                         "filter it to one run first")
    optional = df.reindex(columns=["baseline_revenue_lower", "baseline_revenue_upper", "total_conversions"]).loc[
        totals.index].apply(pd.to_numeric, errors="coerce").set_axis(totals["scenario"].to_numpy())
    totals = totals.iloc[::-1].set_index("scenario")  # the table's first plan on top
    days = totals["horizon_days"].dropna().unique()
    horizon = f"next {int(days[0])} days" if len(days) == 1 else "the horizon"
    baseline = totals["baseline_revenue"].dropna().unique()
    base_text = f"baseline {_compact(float(baseline[0]))} (no interval)" if len(baseline) == 1 else "baseline"
    # Tables published before the baseline had draws and conversions lack these columns: drawn as before.
    low, high = (optional[c].dropna().unique() for c in ("baseline_revenue_lower", "baseline_revenue_upper"))
    if len(baseline) == 1 and len(low) == 1 and len(high) == 1:
        base_text = f"baseline {_compact(float(baseline[0]))} ({_compact(float(low[0]))}–{_compact(float(high[0]))})"
    fig, body = _new_chart(
        ctx, f"Spend plans: expected revenue, {horizon}",
        f"bars: media revenue by channel · ◆ planned spend · whiskers: bootstrap interval · right: {base_text} + media",
    )
    ax = body.subplots()
    order = _channel_order(rows["channel"].tolist())
    colors = channel_colors(order)
    media = rows.pivot_table(index="scenario", columns="channel", values="incremental_revenue", aggfunc="sum")
    media = media.reindex(index=totals.index, columns=order).fillna(0.0).clip(lower=0.0)
    pos = np.arange(len(totals), dtype=float)
    left = np.zeros(len(totals))
    for channel in order:
        for bar in ax.barh(pos, media[channel].to_numpy(), left=left, height=0.55, color=colors[channel], zorder=2):
            _tag(bar, channel)
        left = left + media[channel].to_numpy()
    spend = totals["planned_spend"].to_numpy()
    lower, upper = totals["incremental_revenue_lower"].to_numpy(), totals["incremental_revenue_upper"].to_numpy()
    window = _whisker_window(np.r_[totals["incremental_revenue"].to_numpy(), spend], lower, upper)
    window = (min(window[0], 0.0), window[1])
    _draw_whiskers(ax, pos, lower, upper, window)
    ax.scatter(spend, pos, marker="D", s=70, color=_INK, edgecolors="white", linewidths=1.2, zorder=5)
    ax.set_yticks(pos, [_scenario_label(n) for n in totals.index])
    ax.set_ylim(-0.6, len(totals) - 0.4)
    ax.set_xlim(window[0], _padded(window)[1])
    _compact_axis(ax.xaxis)
    ax.xaxis.set_major_locator(mticker.MaxNLocator(6))
    ax.set_xlabel(f"media revenue and spend, {horizon}")
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0)
    labels = []
    totals_conversions = optional["total_conversions"].to_dict()
    for row in totals.itertuples():
        total = (f"{_compact(row.total_revenue)} ({_compact(row.total_revenue_lower)}–{_compact(row.total_revenue_upper)})"
                 if np.isfinite(row.total_revenue) else "n/a")
        roi = (f"ROI {_percent(row.roi)} ({_percent(row.roi_lower)} to {_percent(row.roi_upper)})"
               if np.isfinite(row.roi) else "ROI n/a")
        conversions = totals_conversions.get(row.Index, np.nan)
        sales = f" · {_compact(conversions)} conversions" if np.isfinite(conversions) else ""
        labels.append(f"total {total}{sales}\n{roi}")
    twin = _right_labels(ax, pos, labels, "total revenue, media ROI")
    handles = [Patch(color=colors[c], label=c) for c in order]
    handles += [Line2D([], [], color=_INK, marker="D", linestyle="none", markersize=8, label="planned spend")]
    body.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 7),
                fontsize=12 if len(handles) > 8 else 13)
    twin.set_ylim(ax.get_ylim())
    return fig


# --------------------------------------------------------------------------------------------
# Public API

# --------------------------------------------------------------------------------------------
# 9. Triangulation: platform claims, attribution, incrementality

_VIEWS = (  # (column, legend label, colour): the three revenue views, claimed to measured
    ("platform_revenue", "platform-claimed revenue", "#b0b7c3"),
    ("attributed_revenue", "Markov-attributed revenue", "#5b7db1"),
    ("mmm_contribution", "incremental revenue (media mix)", _UP),
)


def _draw_channel_triangulation(df: pd.DataFrame, ctx: ChartContext) -> Figure:
    chart, table = "channel_triangulation", "channel_triangulation"
    measures = ("attributed_revenue", "mmm_contribution")
    numeric = ("platform_revenue", *(f"{m}{s}" for m in measures for s in ("", "_lower", "_upper")),
               "platform_overclaim", "attribution_vs_incrementality")
    data = _prepare(df, chart, table, ("channel", *numeric, "identifiable"))
    data = _as_float(_as_channel(data, chart, table), numeric, chart, table)
    _one_row_per_channel(data, chart, table)
    data["_flagged"] = data["identifiable"].map(_not_identifiable).astype(bool)
    size = data[["platform_revenue", "attributed_revenue", "mmm_contribution"]].max(axis=1, skipna=True).fillna(0.0)
    data = data.assign(_size=size).sort_values(["_size", "channel"], ascending=[True, False], kind="stable")

    fig, body = _new_chart(ctx, "Platform claims vs attribution vs incrementality",
                           "revenue over the media-mix window · whiskers: 95% interval · "
                           "right: claimed and Markov per unit of incremental")
    ax = body.subplots()
    pos = np.arange(len(data), dtype=float)
    height = 0.27
    offsets = (height, 0.0, -height)
    values = np.column_stack([data[c].to_numpy() for c, _, _ in _VIEWS])
    lower = data[["attributed_revenue_lower", "mmm_contribution_lower"]].to_numpy()
    upper = data[["attributed_revenue_upper", "mmm_contribution_upper"]].to_numpy()
    window = _whisker_window(np.nan_to_num(values).ravel(), lower.ravel(), upper.ravel())
    window = (min(window[0], 0.0), window[1])
    flagged = data["_flagged"].to_numpy()
    for j, ((column, label, color), offset) in enumerate(zip(_VIEWS, offsets)):
        # Bars take the view's colour, not the channel's: the swatch beside the name carries the channel.
        bars = ax.barh(pos + offset, np.nan_to_num(values[:, j]), height=height, color=color, label=label, zorder=2)
        for bar, is_flagged in zip(bars, flagged):
            if is_flagged and column == "mmm_contribution":
                bar.set_alpha(0.35)
                bar.set_hatch("xx")
                bar.set_edgecolor(_UNIDENTIFIED)
                bar.set_linestyle((0, (3, 2)))
        if j > 0:
            _draw_whiskers(ax, pos + offset, lower[:, j - 1], upper[:, j - 1], window, size=7)
    notes = []
    for i in np.flatnonzero(data["platform_revenue"].isna().to_numpy()):
        notes.append(ax.annotate("no platform revenue reported", (0.0, pos[i] + height), xytext=(6, 0),
                                 textcoords="offset points", va="center", ha="left", fontsize=11,
                                 fontstyle="italic", color=_MUTED))
    ax.set_yticks(pos, data["channel"].tolist())
    for tick, is_flagged in zip(ax.get_yticklabels(), flagged):
        if is_flagged:
            tick.set_color(_UNIDENTIFIED)
    ax.set_ylim(-0.6, len(data) - 0.4)
    ax.set_xlim(window[0], _padded(window)[1])
    _compact_axis(ax.xaxis)
    ax.set_xlabel("revenue over the window")
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0)
    colors = channel_colors(data["channel"])
    for i, channel in enumerate(data["channel"]):
        swatch = ax.annotate("■", xy=(0.0, pos[i]), xycoords=ax.get_yaxis_transform(), xytext=(-11, 0),
                             textcoords="offset points", ha="center", va="center", fontsize=17, color=colors[channel])
        _tag(swatch, channel)
    ax.tick_params(axis="y", pad=22)

    # A ratio to an incrementality the data cannot identify would be a confident wrong number: say so instead.
    labels = ["ratios: not identifiable" if f else f"claimed {_ratio(p)} · Markov {_ratio(m)}"
              for p, m, f in zip(data["platform_overclaim"], data["attribution_vs_incrementality"], flagged)]
    twin = _right_labels(ax, pos, labels, "per unit of incremental")
    for tick, is_flagged in zip(twin.get_yticklabels(), flagged):
        if is_flagged:
            tick.set_color(_UNIDENTIFIED)
            tick.set_fontstyle("italic")
    handles = [Patch(facecolor=color, label=label) for _, label, color in _VIEWS]
    if flagged.any():
        handles.append(Patch(facecolor="#ffffff", edgecolor=_UNIDENTIFIED, hatch="xx", linestyle=(0, (3, 2)),
                             label="not identifiable: incrementality and ratios not supported by the data"))
    body.legend(handles=handles, loc="outside lower center", ncols=2 if flagged.any() else 3, fontsize=13)
    _keep_texts_inside(fig, ax, notes)
    twin.set_ylim(ax.get_ylim())
    return fig


_METRIC_COLORS = {"roi": "#1f77b4", "conversions": "#ff7f0e", "reach": "#2ca02c", "impressions": "#9467bd",
                  "clicks": "#8c564b", "ctr": "#d62728"}


def _draw_forecast_accuracy(df: pd.DataFrame, ctx: ChartContext) -> Figure:
    name, table = "forecast_accuracy", "forecast_accuracy_by_horizon"
    title = "Forecast accuracy by horizon"
    numbers = ["horizon_days", "scored_points", "pending_points", "wape", "interval_hit_rate", "nominal_coverage"]
    frame = _as_float(_prepare(df, name, table, ["metric", *numbers]), numbers, name, table)
    frame["metric"] = frame["metric"].astype(str)
    scored = frame[frame["scored_points"] > 0]
    if scored.empty:
        pending = int(frame["pending_points"].sum())
        return _nothing_to_draw(ctx, title, f"No forecast scored yet: {pending:,} forecast points wait for their "
                                            "days to arrive in the data.\nThe next refreshes with new days score them.")
    nominal = float(frame["nominal_coverage"].iloc[0])
    fig, body = _new_chart(ctx, title, note=f"{int(scored['scored_points'].sum()):,} forecast points scored against "
                                           "the days that arrived; WAPE = sum |error| / sum |actual|")
    left, right = body.subplots(1, 2)
    metrics = [m for m in _METRIC_COLORS if m in set(scored["metric"])] + sorted(
        set(scored["metric"]) - set(_METRIC_COLORS))
    for metric in metrics:
        rows = scored[scored["metric"] == metric].sort_values("horizon_days")
        color = _METRIC_COLORS.get(metric, _MUTED)
        style = dict(color=color, marker="o", markersize=4, linewidth=2, label=metric)
        left.plot(rows["horizon_days"], rows["wape"], **style)
        right.plot(rows["horizon_days"], rows["interval_hit_rate"], **style)
    left.set_title("Error (WAPE) by days ahead")
    left.set_xlabel("days ahead")
    _percent_axis(left.yaxis)
    left.set_ylim(bottom=0)
    right.axhline(nominal, color=_INK, linestyle="--", linewidth=1.5)
    right.text(1.0, nominal, f" nominal {nominal:.0%}", transform=right.get_yaxis_transform(), va="bottom", ha="right",
               fontsize=12, color=_INK)
    right.set_title("Actuals inside the interval")
    right.set_xlabel("days ahead")
    right.set_ylim(0, 1.05)
    _percent_axis(right.yaxis)
    left.legend(loc="upper left", ncols=2)
    return fig


_DRAWERS: dict[str, Callable[[pd.DataFrame, ChartContext], Figure]] = {
    "roi_forecast": _draw_roi_forecast,
    "roi_timeseries": _draw_roi_timeseries,
    "reach_ctr": _draw_reach_ctr,
    "budget_recommendation": _draw_budget_recommendation,
    "attribution_comparison": _draw_attribution_comparison,
    "mmm_roas": _draw_mmm_roas,
    "revenue_contribution": _draw_revenue_contribution,
    "spend_scenarios": _draw_spend_scenarios,
    "channel_triangulation": _draw_channel_triangulation,
    "forecast_accuracy": _draw_forecast_accuracy,
}


def _figure_for(name: str, df: pd.DataFrame, ctx: ChartContext) -> Figure:
    """The laid-out figure of chart ``name`` (for tests that inspect text positions)."""
    _check_context(ctx, name)
    with matplotlib.rc_context(_style()):
        fig = _DRAWERS[name](df, ctx)
        fig.canvas.draw()
    return fig


def _png(name: str, df: pd.DataFrame, ctx: ChartContext) -> bytes:
    _check_context(ctx, name)
    with matplotlib.rc_context(_style()):
        fig = _DRAWERS[name](df, ctx)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    fig.clear()
    return buffer.getvalue()


def roi_forecast_chart(df: pd.DataFrame, ctx: ChartContext) -> bytes:
    """Predicted ROI per channel over the forecast horizon, as a PNG.

    df: ``ml_roi_forecast`` with ``channel, horizon_days, predicted_roi, roi_lower, roi_upper,
    backtest_mape`` (one horizon, one row per channel; ROI as a fraction, 0.5 = +50 %; MAPE as a
    fraction). Horizontal bars sorted best on top with interval whiskers, a zero (break-even)
    line, the ROI printed beside each bar and the revenue backtest MAPE on the right. Rows with
    a NULL ROI are left out. Returns 1200x700 PNG bytes.
    """
    return _png("roi_forecast", df, ctx)


def roi_timeseries_chart(df: pd.DataFrame, ctx: ChartContext) -> bytes:
    """Daily ROI per channel: the last 120 days of history (7-day average) and the forecast, as a PNG.

    df: ``ml_roi_timeseries`` with ``date, channel, roi, is_forecast, roi_lower, roi_upper``
    (NULL history ROI on zero-spend days is skipped by the average). One panel per channel
    (up to 4 across), own y scale each, forecast dashed with its shaded interval. History and
    forecast share one trailing 7-day average, so each forecast starts at the last observed day;
    the band is the same average of the daily bounds (a little wider than a weekly interval).
    """
    return _png("roi_timeseries", df, ctx)


def reach_ctr_chart(df: pd.DataFrame, ctx: ChartContext) -> bytes:
    """Reach (stacked by channel, left axis) and overall CTR (right axis), history and forecast, as a PNG.

    df: ``ml_reach_ctr_timeseries`` with ``date, channel, reach, impressions, clicks,
    is_forecast, reach_lower, reach_upper, ctr_lower, ctr_upper``. Last 120 days of history and
    the forecast as trailing 7-day averages; reach stacked in channel colours (forecast paler),
    overall CTR = total clicks / total impressions on the upper part of the chart. The reach band is
    the sum of the channel bounds and the CTR band the impression-weighted mean of the channel
    bounds: both treat channels as moving together, so they are wide rather than narrow.
    Reach is optional in the data: channels whose reach is empty on every row are left out of the
    stack and named in the note ("no reach in the data for ..."); without any reach at all the chart
    shows CTR and says "no reach in the data" instead of drawing zeros.
    """
    return _png("reach_ctr", df, ctx)


def budget_recommendation_chart(df: pd.DataFrame, ctx: ChartContext) -> bytes:
    """Current vs recommended spend per channel with the change in %, as a PNG.

    df: ``ml_budget_recommendation`` with ``channel, current_spend, recommended_spend,
    current_expected_revenue, recommended_expected_revenue, recommended_expected_revenue_lower,
    recommended_expected_revenue_upper, marginal_roas_current, marginal_roas_recommended``.
    The ``TOTAL`` row (case-insensitive, at most one) is not a bar: it gives the title's expected
    revenue change and its interval (recommended bounds minus current expected revenue). Without
    it the change is summed from the channels and shown without an interval. The change % is
    recomputed from the spends, so the convention of ``change_pct`` does not matter.
    """
    return _png("budget_recommendation", df, ctx)


def attribution_comparison_chart(df: pd.DataFrame, ctx: ChartContext) -> bytes:
    """Heatmap of each channel's share of credit under every attribution model, as a PNG.

    df: ``channel_attribution`` with ``model, channel, share, share_lower, share_upper``
    (shares as fractions; CI may be NULL). Models in the order first_touch, last_touch, linear,
    time_decay, position_based, w_shaped, assisted, markov, shapley, then unknown ones sorted;
    channels by mean share, largest on top; each cell shows the share and, when known, its interval.
    """
    return _png("attribution_comparison", df, ctx)


def mmm_roas_chart(df: pd.DataFrame, ctx: ChartContext) -> bytes:
    """Average and marginal ROAS per channel from the media mix model, with intervals, as a PNG.

    df: ``mmm_channel_roas`` with ``channel, roas, roas_lower, roas_upper, marginal_roas,
    marginal_roas_lower, marginal_roas_upper`` (ROAS = revenue per unit of spend) and, when present,
    the review gate's ``identifiable, review_reason``. Paired bars (solid average, hatched marginal),
    whiskers cut with an arrow head beyond one core span, a dashed break-even line at 1 and the two
    values printed on the right. A channel with ``identifiable`` false is drawn pale, crossed out in
    grey with a dashed outline and a grey name, labelled "not identifiable: <first reason>" beside
    its bars, and the legend says what that means.
    """
    return _png("mmm_roas", df, ctx)


def revenue_contribution_chart(df: pd.DataFrame, ctx: ChartContext) -> bytes:
    """Revenue decomposed over time into baseline and channel contributions (stacked area), as a PNG.

    df: long frame ``date, component, value`` with ``component`` = ``baseline`` or a channel name
    (daily values; duplicates summed, missing days 0). Baseline in grey at the bottom, channels
    above it by total contribution; weekly averages of the daily values above 120 days; negative
    values are drawn at 0 (and the note says so). The title gives the media share of the total.
    """
    return _png("revenue_contribution", df, ctx)


def spend_scenarios_chart(df: pd.DataFrame, ctx: ChartContext) -> bytes:
    """Expected revenue of every spend plan over the horizon, with intervals, as a PNG.

    df: ``ml_spend_scenarios`` with ``scenario, channel, horizon_days, planned_spend, incremental_revenue``
    (with ``_lower``/``_upper``), ``baseline_revenue, total_revenue`` (with ``_lower``/``_upper``) and ``roi``
    (with ``_lower``/``_upper``): channel rows and one ``TOTAL`` row per scenario. One bar per plan, the
    table's first plan on top: media revenue stacked by channel (channel colours) with the TOTAL row's
    bootstrap interval, a diamond at the planned spend (a bar past its diamond returns more than it costs),
    and on the right total revenue (baseline + media) and media ROI, each with its interval, and total
    conversions; the subtitle gives the baseline with its interval (when the table has
    ``baseline_revenue_lower``/``_upper`` and ``total_conversions``: older tables lack them).
    """
    return _png("spend_scenarios", df, ctx)


def channel_triangulation_chart(df: pd.DataFrame, ctx: ChartContext) -> bytes:
    """Per channel, the three revenue views side by side over the media-mix window, as a PNG.

    df: ``channel_triangulation`` with ``channel, platform_revenue, attributed_revenue, mmm_contribution``
    (the last two with ``_lower``/``_upper``), ``platform_overclaim, attribution_vs_incrementality`` and
    ``identifiable``. Three bars per channel (platform claim grey, Markov blue, media-mix incremental green)
    with interval whiskers, largest channel on top; on the right each channel's claimed and attributed
    revenue per unit of incremental revenue. A channel without platform revenue says so; a channel the
    media-mix model cannot identify has its incremental bar crossed out and, in place of its ratios,
    "ratios: not identifiable".
    """
    return _png("channel_triangulation", df, ctx)


def forecast_accuracy_chart(df: pd.DataFrame, ctx: ChartContext) -> bytes:
    """Error by horizon and interval hit rate of the scored forecasts, as a PNG.

    df: ``forecast_accuracy_by_horizon`` with ``metric, horizon_days, scored_points, pending_points, wape,
    interval_hit_rate, nominal_coverage``. Left: WAPE by days ahead, one line per metric; right: the share
    of actuals inside the forecast interval by days ahead, with the nominal coverage dashed. Before any
    forecast day has arrived (a first run) it says how many points are waiting instead.
    """
    return _png("forecast_accuracy", df, ctx)


CHARTS: dict[str, Callable[[pd.DataFrame, ChartContext], bytes]] = {
    "roi_forecast": roi_forecast_chart,
    "roi_timeseries": roi_timeseries_chart,
    "reach_ctr": reach_ctr_chart,
    "budget_recommendation": budget_recommendation_chart,
    "attribution_comparison": attribution_comparison_chart,
    "mmm_roas": mmm_roas_chart,
    "revenue_contribution": revenue_contribution_chart,
    "spend_scenarios": spend_scenarios_chart,
    "channel_triangulation": channel_triangulation_chart,
    "forecast_accuracy": forecast_accuracy_chart,
}


def write_png_atomic(path: str | os.PathLike[str], png_bytes: bytes) -> Path:
    """Write PNG bytes to ``path`` so that readers see the old file or the new one, never half of one.

    Writes a temporary file in the same folder (created if missing), fsyncs it and renames it
    over ``path`` with ``os.replace``; the temporary file is removed if anything fails. The file
    gets mode 0644. Raises TypeError for non-bytes and ValueError when the bytes are not a PNG.
    Returns the path written. A process killed mid-write (SIGKILL, out of memory) runs no cleanup:
    its hidden temporary file stays until `remove_stale_temp_files` removes it.
    """
    if not isinstance(png_bytes, (bytes, bytearray, memoryview)):
        raise TypeError(f"write_png_atomic: expected PNG bytes for {path}, got {type(png_bytes).__name__}")
    data = bytes(png_bytes)
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError(f"write_png_atomic: the {len(data)} bytes for {path} do not start with the PNG signature")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


def remove_stale_temp_files(folder: str | os.PathLike[str], older_than_s: float = STALE_TEMP_AFTER_S) -> list[Path]:
    """Delete the temporary files of killed `write_png_atomic` calls in ``folder``; returns the paths removed.

    Only files older than ``older_than_s`` seconds go: a younger one may belong to a writer that is
    still running (chart assets run in parallel on PostgreSQL). A missing folder has nothing to remove.
    """
    cutoff = time.time() - older_than_s
    removed = []
    for path in sorted(Path(folder).glob(TEMP_PATTERN)):
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_mtime >= cutoff:
                continue
            path.unlink()
        except FileNotFoundError:  # another cleaner, or its writer, removed it first
            continue
        removed.append(path)
    return removed
