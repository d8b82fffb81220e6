"""Tests for charts.plots: every chart renders a readable 1200x700 PNG from realistic tables."""

from __future__ import annotations

import itertools
import os
from datetime import date, datetime, timedelta, timezone
from io import BytesIO

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.text import Text
from PIL import Image

from charts.palette import BASELINE_COLOR, CHANNEL_COLORS, FALLBACK_POOL, channel_colors
from charts.plots import CHARTS, ChartContext, _figure_for, _period_phrase, _run_phrase, write_png_atomic

DEMO = ["search", "social", "display", "video", "email", "affiliate", "shopping", "podcast"]
EXTRA = ["tv", "radio", "print", "out_of_home"]
LAST_DAY = date(2026, 11, 21)
CTX = ChartContext(
    period_start=date(2026, 5, 26), period_end=LAST_DAY,
    generated_at=datetime(2026, 11, 22, 17, 30, tzinfo=timezone(timedelta(hours=1))), run_id="4f3a2b1c9d8e7f60aa",
)
ATTRIBUTION_MODELS = [
    "first_touch", "last_touch", "linear", "time_decay", "position_based", "w_shaped", "assisted", "markov", "shapley",
]


def _stamp(frame: pd.DataFrame) -> pd.DataFrame:
    frame["run_id"] = CTX.run_id
    frame["generated_at"] = pd.Timestamp(CTX.generated_at)
    return frame


def roi_forecast_frame(channels: list[str], seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(channels)
    spend = rng.uniform(2_000, 40_000, n)
    roi = rng.normal(0.8, 1.0, n)
    roi[0] = -0.35  # one channel losing money
    half = rng.uniform(0.1, 0.8, n)
    half[-1] = 6.0  # one very uncertain channel: its whisker must be cut, not stretch the axis
    return _stamp(pd.DataFrame({
        "channel": channels, "horizon_days": 30, "predicted_spend": spend, "predicted_revenue": spend * (1 + roi),
        "predicted_roi": roi, "roi_lower": roi - half * rng.uniform(0.5, 1, n), "roi_upper": roi + half,
        "method": "prophet", "backtest_mape": rng.uniform(0.04, 0.4, n),
    }))


def _days(history: int, horizon: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
    end = pd.Timestamp(LAST_DAY)
    dates = pd.date_range(end - pd.Timedelta(days=history - 1), end + pd.Timedelta(days=horizon), freq="D")
    return dates, np.r_[np.zeros(history, bool), np.ones(horizon, bool)]


def roi_timeseries_frame(channels: list[str], seed: int = 2, history: int = 240, horizon: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates, is_fc = _days(history, horizon)
    parts = []
    for channel in channels:
        base = rng.uniform(-0.3, 3.0)
        weekly = 0.3 * np.sin(2 * np.pi * np.arange(len(dates)) / 7)
        roi = base + weekly + np.where(is_fc, 0.0, rng.normal(0, 0.6, len(dates)))
        roi[~is_fc & (rng.random(len(dates)) < 0.05)] = np.nan  # paused days
        width = np.where(is_fc, 0.2 + 0.02 * np.cumsum(is_fc), 0.0)
        conv = rng.poisson(20, len(dates)).astype(float)
        parts.append(pd.DataFrame({
            "date": dates.date, "channel": channel, "roi": roi, "conversions": conv, "is_forecast": is_fc,
            "roi_lower": roi - width, "roi_upper": roi + width, "conversions_lower": conv * 0.8,
            "conversions_upper": conv * 1.2,
        }))
    return _stamp(pd.concat(parts, ignore_index=True))


def reach_ctr_frame(channels: list[str], seed: int = 3, history: int = 240, horizon: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates, is_fc = _days(history, horizon)
    parts = []
    for channel in channels:
        level = rng.uniform(4_000, 80_000)
        weekly = 1 + 0.2 * np.sin(2 * np.pi * np.arange(len(dates)) / 7)
        reach = level * weekly * np.where(is_fc, 1.0, rng.lognormal(0, 0.15, len(dates)))
        impressions = reach * rng.uniform(1.5, 4)
        ctr = rng.uniform(0.003, 0.03) * np.where(is_fc, 1.0, rng.lognormal(0, 0.1, len(dates)))
        clicks = impressions * ctr
        growth = np.where(is_fc, 0.1 + 0.01 * np.cumsum(is_fc), 0.0)
        frame = pd.DataFrame({"date": dates, "channel": channel, "is_forecast": is_fc})
        for name, value in (("reach", reach), ("impressions", impressions), ("clicks", clicks), ("ctr", ctr)):
            frame[name] = value
            frame[f"{name}_lower"] = value * (1 - growth)
            frame[f"{name}_upper"] = value * (1 + growth)
        parts.append(frame)
    return _stamp(pd.concat(parts, ignore_index=True))


def budget_frame(channels: list[str], seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(channels)
    current = rng.uniform(3_000, 50_000, n)
    change = rng.uniform(-0.4, 0.5, n)
    change[0] = 0.0
    recommended = current * (1 + change)
    recommended *= current.sum() / recommended.sum()
    cur_rev = current * rng.uniform(1.5, 4, n)
    rec_rev = cur_rev * (1 + 0.3 * (recommended / current - 1))
    frame = pd.DataFrame({
        "channel": channels, "current_spend": current, "recommended_spend": recommended,
        "change_pct": (recommended / current - 1) * 100, "current_expected_revenue": cur_rev,
        "recommended_expected_revenue": rec_rev, "recommended_expected_revenue_lower": rec_rev * 0.9,
        "recommended_expected_revenue_upper": rec_rev * 1.1, "marginal_roas_current": rng.uniform(0.5, 4, n),
        "marginal_roas_recommended": rng.uniform(0.8, 2, n), "reason": "equalise marginal ROAS",
    })
    total = {
        "channel": "TOTAL", "current_spend": current.sum(), "recommended_spend": recommended.sum(), "change_pct": 0.0,
        "current_expected_revenue": cur_rev.sum(), "recommended_expected_revenue": cur_rev.sum() * 1.041,
        "recommended_expected_revenue_lower": cur_rev.sum() * 1.015,
        "recommended_expected_revenue_upper": cur_rev.sum() * 1.07,
        "marginal_roas_current": np.nan, "marginal_roas_recommended": np.nan, "reason": "total",
    }
    return _stamp(pd.concat([frame, pd.DataFrame([total])], ignore_index=True))


def attribution_frame(channels: list[str], seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    base = rng.dirichlet(np.ones(len(channels)) * 2)
    for model in ATTRIBUTION_MODELS:
        share = rng.dirichlet(base * 60 + 0.1)
        half = 0.01 + 0.3 * share * rng.uniform(0.2, 1, len(channels))
        spend = rng.uniform(5_000, 60_000, len(channels))
        conv = share * 1_000
        rows.append(pd.DataFrame({
            "model": model, "channel": channels, "attributed_conversions": conv, "attributed_revenue": conv * 80,
            "share": share, "share_lower": np.clip(share - half, 0, 1), "share_upper": np.clip(share + half, 0, 1),
            "spend": spend, "attributed_roas": conv * 80 / spend,
        }))
    return _stamp(pd.concat(rows, ignore_index=True))


def mmm_frame(channels: list[str], seed: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(channels)
    spend = rng.uniform(5_000, 80_000, n)
    roas = rng.uniform(0.6, 5.0, n)
    marginal = roas * rng.uniform(0.2, 0.9, n)
    contribution = spend * roas
    frame = pd.DataFrame({
        "channel": channels, "spend": spend, "contribution": contribution,
        "contribution_lower": contribution * 0.7, "contribution_upper": contribution * 1.3,
        "contribution_share": contribution / contribution.sum(),
        "contribution_share_lower": contribution / contribution.sum() * 0.7,
        "contribution_share_upper": contribution / contribution.sum() * 1.3,
        "roas": roas, "roas_lower": roas * 0.7, "roas_upper": roas * 1.35,
        "marginal_roas": marginal, "marginal_roas_lower": marginal * 0.5, "marginal_roas_upper": marginal * 1.6,
        "adstock_decay": 0.5, "saturation_half": 1_000.0, "saturation_shape": 1.5,
    })
    frame.loc[n - 1, "marginal_roas_upper"] = 40.0  # a wild bootstrap tail
    return _stamp(frame)


def contribution_frame(channels: list[str], seed: int = 7, days: int = 180) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end=pd.Timestamp(LAST_DAY), periods=days, freq="D")
    weekly = 1 + 0.15 * np.sin(2 * np.pi * np.arange(days) / 7)
    parts = [pd.DataFrame({"date": dates, "component": "baseline", "value": 4_000 * weekly + rng.normal(0, 200, days)})]
    for channel in channels:
        level = rng.uniform(100, 900)
        burst = np.clip(np.sin(np.arange(days) / rng.uniform(8, 30) + rng.uniform(0, 6)), 0, None)
        parts.append(pd.DataFrame({"date": dates, "component": channel, "value": level * (0.4 + burst) * weekly}))
    return _stamp(pd.concat(parts, ignore_index=True))


def spend_scenarios_frame(channels: list[str], seed: int = 8) -> pd.DataFrame:
    """The four published plans over known response curves, as core.spend_scenarios writes them."""
    from core.spend_scenarios import PublishedCurves, spend_scenario

    rng = np.random.default_rng(seed)
    n, draws = len(channels), 40
    current = rng.uniform(100, 1_500, n)
    half = current * rng.uniform(0.5, 3.0, n)
    beta = current * rng.uniform(1.5, 6.0, n)
    curves = PublishedCurves(
        tuple(channels), {c: (beta[i], half[i], 1.0) for i, c in enumerate(channels)},
        {c: (beta[i] * rng.lognormal(0, 0.15, draws), np.full(draws, half[i]), np.ones(draws))
         for i, c in enumerate(channels)},
        dict(zip(channels, current)), baseline_daily=20_000.0, ci=0.95,
    )
    plans = {"current": {}, "budget_recommendation": dict(zip(channels, current * rng.uniform(0.7, 1.3, n))),
             "current_minus_20pct": dict(zip(channels, current * 0.8)),
             "current_plus_20pct": dict(zip(channels, current * 1.2))}
    return _stamp(pd.concat([spend_scenario(curves, p, scenario=name) for name, p in plans.items()],
                            ignore_index=True))


def triangulation_frame(channels: list[str], seed: int = 9) -> pd.DataFrame:
    """channel_triangulation as ml.triangulation writes it: the first channel without platform revenue, the
    third not identifiable with a contribution interval reaching 0 (no upper ratio bound)."""
    rng = np.random.default_rng(seed)
    n = len(channels)
    contribution = rng.uniform(2e3, 4e4, n)
    c_lo, c_hi = contribution * rng.uniform(0.4, 0.9, n), contribution * rng.uniform(1.1, 1.8, n)
    c_lo[2] = 0.0
    claimed = contribution * rng.uniform(0.8, 3.0, n)
    claimed[0] = np.nan
    attributed = contribution * rng.uniform(0.3, 1.5, n)
    a_lo, a_hi = attributed * 0.85, attributed * 1.15
    with np.errstate(divide="ignore"):
        frame = pd.DataFrame({
            "channel": channels, "platform_revenue": claimed,
            "attributed_revenue": attributed, "attributed_revenue_lower": a_lo, "attributed_revenue_upper": a_hi,
            "mmm_contribution": contribution, "mmm_contribution_lower": c_lo, "mmm_contribution_upper": c_hi,
            "platform_overclaim": claimed / contribution,
            "attribution_vs_incrementality": attributed / contribution,
            "identifiable": [i != 2 for i in range(n)],
        })
    return frame


def forecast_accuracy_frame(channels: list[str], seed: int = 10) -> pd.DataFrame:
    """forecast_accuracy_by_horizon as ml.forecast_scoring writes it: WAPE rising with the horizon, hit rates
    under the nominal 95%, the last horizons still pending (channels do not appear in this table)."""
    rng = np.random.default_rng(seed)
    rows = []
    for metric in ("roi", "conversions", "impressions", "clicks", "ctr"):
        for h in range(1, 31):
            scored = 0 if h > 25 else 8 * (26 - h)
            rows.append({"metric": metric, "horizon_days": h, "scored_points": scored, "pending_points": 8,
                         "mean_error": rng.normal(0, 0.05), "mean_abs_error": 0.1 + 0.01 * h,
                         "wape": np.nan if not scored else 0.1 + 0.01 * h + rng.uniform(0, 0.03),
                         "interval_hit_rate": np.nan if not scored else min(1.0, 0.9 - 0.004 * h + rng.uniform(0, 0.05)),
                         "nominal_coverage": 0.95, "recent_scored_points": scored // 2, "recent_wape": np.nan,
                         "recent_interval_hit_rate": np.nan})
    return pd.DataFrame(rows)


FRAMES = {
    "roi_forecast": roi_forecast_frame,
    "roi_timeseries": roi_timeseries_frame,
    "reach_ctr": reach_ctr_frame,
    "budget_recommendation": budget_frame,
    "attribution_comparison": attribution_frame,
    "mmm_roas": mmm_frame,
    "revenue_contribution": contribution_frame,
    "spend_scenarios": spend_scenarios_frame,
    "channel_triangulation": triangulation_frame,
    "forecast_accuracy": forecast_accuracy_frame,
}


@pytest.fixture(scope="module")
def figures12() -> dict:
    return {name: _figure_for(name, FRAMES[name](DEMO + EXTRA), CTX) for name in CHARTS}


@pytest.fixture(scope="module")
def pngs() -> dict[str, bytes]:
    """Eight-channel PNGs through the public functions; the twelve-channel figures are checked on
    their Agg canvas (same renderer, no second encode)."""
    return {name: CHARTS[name](FRAMES[name](DEMO), CTX) for name in CHARTS}


# --------------------------------------------------------------------------------------------
# Palette


def test_demo_channels_have_fixed_colours_and_baseline_is_grey():
    colors = channel_colors(["podcast", "Search", " email ", "baseline"])
    assert colors == {
        "podcast": CHANNEL_COLORS["podcast"], "Search": CHANNEL_COLORS["search"],
        " email ": CHANNEL_COLORS["email"], "baseline": BASELINE_COLOR,
    }
    assert len(set(CHANNEL_COLORS.values())) == 8


@pytest.mark.parametrize(
    "channels", [DEMO + EXTRA, [f"partner_{i}" for i in range(12)], DEMO + [f"x{i}" for i in range(12)]],
)
def test_up_to_20_channels_get_distinct_colours_independent_of_order(channels):
    colors = channel_colors(channels)
    assert len(set(colors.values())) == len(channels)
    assert channel_colors(list(reversed(channels))) == colors
    assert channel_colors(channels[::2]) | channel_colors(channels) == colors
    assert all(c in FALLBACK_POOL or c in CHANNEL_COLORS.values() for c in colors.values())


def test_unknown_channel_colour_depends_only_on_its_name_without_collisions():
    alone = channel_colors(["tv"])["tv"]
    assert channel_colors(DEMO + ["tv"])["tv"] == alone
    assert channel_colors(["TV", "tv"]) == {"TV": alone, "tv": alone}


def _channel_face_colors(fig) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for artist in fig.findobj(lambda a: (a.get_gid() or "").startswith("channel:")):
        channel = artist.get_gid().split(":", 1)[1]
        if hasattr(artist, "get_facecolor"):
            face = artist.get_facecolor()
            face = face[0] if np.ndim(face) == 2 else face
        else:
            face = artist.get_color()
        found.setdefault(channel, set()).add(to_hex(face, keep_alpha=False))
    return found


# Charts of a table with one line per metric, not per channel (forecast accuracy pools the channels).
CHARTS_WITHOUT_CHANNELS = {"forecast_accuracy"}


def test_each_channel_keeps_its_colour_across_charts(figures12):
    expected = channel_colors(DEMO + EXTRA)
    seen: dict[str, set[str]] = {}
    for name, fig in figures12.items():
        if name in CHARTS_WITHOUT_CHANNELS:
            continue
        drawn = _channel_face_colors(fig)
        assert set(drawn) == set(DEMO + EXTRA), f"{name} tags {sorted(drawn)}"
        for channel, faces in drawn.items():
            seen.setdefault(channel, set()).update(faces)
    for channel, faces in seen.items():
        assert faces == {expected[channel]}, channel


# --------------------------------------------------------------------------------------------
# Rendering


def _assert_not_blank(pixels: np.ndarray) -> None:
    assert pixels.std() > 20, "image looks blank"
    # Not just text on white: a real share of the canvas is ink or colour, in many shades.
    assert (pixels.min(axis=2) < 200).mean() > 0.03
    packed = (pixels[..., 0].astype(np.int64) << 16) | (pixels[..., 1].astype(np.int64) << 8) | pixels[..., 2]
    assert np.unique(packed).size > 50


@pytest.mark.parametrize("name", list(FRAMES))
def test_chart_is_a_1200x700_png_with_content(pngs, name):
    png = pngs[name]
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(BytesIO(png))
    assert image.size == (1200, 700)
    _assert_not_blank(np.asarray(image.convert("RGB")))


@pytest.mark.parametrize("name", list(FRAMES))
def test_twelve_channel_canvas_is_1200x700_with_content(figures12, name):
    canvas = figures12[name].canvas
    assert canvas.get_width_height() == (1200, 700)
    _assert_not_blank(np.asarray(canvas.buffer_rgba())[..., :3])


def test_chart_is_deterministic_across_calls(pngs):
    assert CHARTS["mmm_roas"](mmm_frame(DEMO), CTX) == pngs["mmm_roas"]


def _texts(fig) -> list[tuple[str, object]]:
    """Every text the renderer actually drew, with its box in pixels."""
    renderer = fig.canvas.get_renderer()
    undrawn: set[int] = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if not axis.get_visible():
                undrawn.update(id(t) for t in axis.get_children() if isinstance(t, Text))
                ticks = axis.majorTicks + axis.minorTicks
                undrawn.update(id(label) for tick in ticks for label in (tick.label1, tick.label2))
                continue
            drawn = {id(label) for tick in axis._update_ticks() for label in (tick.label1, tick.label2)}
            for tick in axis.majorTicks + axis.minorTicks:
                undrawn.update(id(label) for label in (tick.label1, tick.label2) if id(label) not in drawn)
    out = []
    for t in fig.findobj(Text):
        if id(t) in undrawn or not t.get_visible() or not t.get_text().strip():
            continue
        if t.axes is not None and not t.axes.get_visible():
            continue
        out.append((t.get_text(), t.get_window_extent(renderer)))
    return out


@pytest.mark.parametrize("name", list(FRAMES))
def test_twelve_channels_no_text_overlaps_or_clipping(figures12, name):
    fig = figures12[name]
    texts = _texts(fig)
    assert len(texts) > 12
    width, height = fig.canvas.get_width_height()
    for text, box in texts:
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1, f"{text!r} clipped: {box}"
    for (ta, a), (tb, b) in itertools.combinations(texts, 2):
        overlap_w = min(a.x1, b.x1) - max(a.x0, b.x0)
        overlap_h = min(a.y1, b.y1) - max(a.y0, b.y0)
        assert not (overlap_w > 1 and overlap_h > 1), f"{name}: {ta!r} overlaps {tb!r}"


def _all_text(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text))


@pytest.mark.parametrize("name", list(FRAMES))
def test_title_states_period_and_run_time_in_utc(figures12, name):
    text = _all_text(figures12[name])
    assert "data 2026-05-26 to 2026-11-21 · run 2026-11-22 16:30 UTC" in text
    assert "run id 4f3a2b1c9d8e" in text


@pytest.mark.parametrize(("start", "end", "phrase"), [
    (None, LAST_DAY, "data to 2026-11-21"), (date(2026, 5, 1), None, "data from 2026-05-01"), (None, None, ""),
])
def test_period_phrase_without_both_ends(start, end, phrase):
    ctx = ChartContext(period_start=start, period_end=end, generated_at=datetime(2026, 11, 22, 16, 30), run_id=None)
    assert _period_phrase(ctx) == phrase
    assert _run_phrase(ctx) == "run 2026-11-22 16:30 UTC"  # naive is taken as UTC


def test_roi_forecast_sorted_best_on_top_with_mape_and_horizon():
    df = roi_forecast_frame(DEMO)
    fig = _figure_for("roi_forecast", df, CTX)
    ax, twin = fig.axes[0], fig.axes[1]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == df.sort_values("predicted_roi")["channel"].tolist()
    mape = df.set_index("channel").loc[labels, "backtest_mape"]
    assert [t.get_text() for t in twin.get_yticklabels()] == [f"{v * 100:.0f}%" for v in mape]
    assert "ROI forecast, next 30 days" in _all_text(fig)


def test_budget_total_row_is_the_headline_not_a_bar():
    df = budget_frame(DEMO)
    fig = _figure_for("budget_recommendation", df, CTX)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert sorted(labels) == sorted(DEMO)
    text = _all_text(fig)
    total = df[df["channel"] == "TOTAL"].iloc[0]
    gain = total["recommended_expected_revenue"] - total["current_expected_revenue"]
    assert f"revenue +{gain / 1000:.1f}k (+4.1%)" in text
    assert "interval +" in text


def test_attribution_cells_follow_model_order_and_show_shares():
    df = attribution_frame(DEMO)
    fig = _figure_for("attribution_comparison", df, CTX)
    ax = fig.axes[0]
    assert [t.get_text().replace("\n", "_") for t in ax.get_xticklabels()][:3] == ["first_touch", "last_touch", "linear"]
    top = df.groupby("channel")["share"].mean().idxmax()
    assert ax.get_yticklabels()[0].get_text() == top
    cell = df[(df["model"] == "markov") & (df["channel"] == top)]["share"].iloc[0]
    assert f"{cell * 100:.0f}%" in _all_text(fig)


def test_revenue_contribution_baseline_grey_at_the_bottom_and_weekly_when_long():
    df = contribution_frame(DEMO, days=180)
    fig = _figure_for("revenue_contribution", df, CTX)
    ax = fig.axes[0]
    bottom = ax.collections[0]
    assert to_hex(bottom.get_facecolor()[0], keep_alpha=False) == BASELINE_COLOR
    assert "weekly average" in _all_text(fig)
    short = _figure_for("revenue_contribution", contribution_frame(DEMO, days=60), CTX)
    assert "daily revenue" in _all_text(short)


def test_roi_timeseries_tolerates_null_history_and_forecast_only_input():
    df = roi_timeseries_frame(DEMO[:3], history=40)
    assert CHARTS["roi_timeseries"](df, CTX).startswith(b"\x89PNG")
    only_forecast = df[df["is_forecast"]]
    assert CHARTS["roi_timeseries"](only_forecast, CTX).startswith(b"\x89PNG")


def _reach_removed(frame: pd.DataFrame, channels: list[str]) -> pd.DataFrame:
    """The table as published when the data has no reach for `channels` (an optional raw column)."""
    frame = frame.copy()
    frame.loc[frame["channel"].isin(channels), ["reach", "reach_lower", "reach_upper"]] = np.nan
    return frame


def test_reach_ctr_without_any_reach_says_so_and_still_draws_ctr():
    fig = _figure_for("reach_ctr", _reach_removed(reach_ctr_frame(DEMO[:3]), DEMO[:3]), CTX)
    texts = [t for t, _ in _texts(fig)]
    assert "no reach in the data" in texts
    assert "reach per day" not in texts and "reach interval" not in texts
    assert _channel_face_colors(fig) == {}  # no zero-height stack pretending to be measured reach
    pixels = np.asarray(Image.open(BytesIO(CHARTS["reach_ctr"](
        _reach_removed(reach_ctr_frame(DEMO[:3]), DEMO[:3]), CTX))).convert("L"), dtype=float)
    assert pixels.std() > 10  # the CTR line and its band are drawn


def test_reach_ctr_names_the_channels_without_reach_and_stacks_the_others():
    fig = _figure_for("reach_ctr", _reach_removed(reach_ctr_frame(DEMO[:4]), ["video"]), CTX)
    assert "no reach in the data for video" in _all_text(fig)
    assert set(_channel_face_colors(fig)) == {"search", "social", "display"}


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("name", list(FRAMES))
def test_empty_input_names_the_chart(name):
    empty = FRAMES[name](DEMO).iloc[0:0]
    with pytest.raises(ValueError, match=rf"{name} chart: .* is empty \(0 rows\)"):
        CHARTS[name](empty, CTX)


@pytest.mark.parametrize("name", list(FRAMES))
def test_missing_column_is_named(name):
    df = FRAMES[name](DEMO)
    column = next(c for c in ("channel", "component", "metric") if c in df.columns)
    with pytest.raises(ValueError, match=rf"{name} chart: .*lacks column\(s\) \['{column}'\]"):
        CHARTS[name](df.drop(columns=[column]), CTX)


def test_bad_inputs_are_explained():
    df = roi_forecast_frame(DEMO)
    with pytest.raises(ValueError, match="one row per channel"):
        CHARTS["roi_forecast"](pd.concat([df, df]), CTX)
    with pytest.raises(ValueError, match="mixes horizons"):
        CHARTS["roi_forecast"](pd.concat([df, df.assign(horizon_days=7, channel=df["channel"] + "_7")]), CTX)
    with pytest.raises(ValueError, match="NULL predicted_roi"):
        CHARTS["roi_forecast"](df.assign(predicted_roi=np.nan), CTX)
    with pytest.raises(ValueError, match="must be numeric"):
        CHARTS["mmm_roas"](mmm_frame(DEMO).assign(roas="high"), CTX)
    with pytest.raises(ValueError, match="is_forecast must be boolean"):
        CHARTS["reach_ctr"](reach_ctr_frame(DEMO).assign(is_forecast="yes"), CTX)
    with pytest.raises(TypeError, match="ChartContext"):
        CHARTS["mmm_roas"](mmm_frame(DEMO), {"period_end": LAST_DAY})


def test_registry_maps_file_stems_to_functions():
    assert list(CHARTS) == [
        "roi_forecast", "roi_timeseries", "reach_ctr", "budget_recommendation",
        "attribution_comparison", "mmm_roas", "revenue_contribution", "spend_scenarios", "channel_triangulation",
        "forecast_accuracy",
    ]
    assert all(fn.__name__ == f"{stem}_chart" for stem, fn in CHARTS.items())


# --------------------------------------------------------------------------------------------
# Atomic write


def test_write_png_atomic_replaces_and_leaves_no_temp_files(tmp_path, pngs):
    target = tmp_path / "charts" / "mmm_roas.png"
    write_png_atomic(target, pngs["reach_ctr"])
    write_png_atomic(target, pngs["mmm_roas"])
    assert target.read_bytes() == pngs["mmm_roas"]
    assert os.listdir(target.parent) == ["mmm_roas.png"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_write_png_atomic_failure_keeps_old_file_and_cleans_up(tmp_path, pngs, monkeypatch):
    target = tmp_path / "roi_forecast.png"
    write_png_atomic(target, pngs["roi_forecast"])
    with pytest.raises(ValueError, match="PNG signature"):
        write_png_atomic(target, b"<html>")
    with pytest.raises(TypeError):
        write_png_atomic(target, "not bytes")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_png_atomic(target, pngs["mmm_roas"])
    assert os.listdir(tmp_path) == ["roi_forecast.png"]
    assert target.read_bytes() == pngs["roi_forecast"]


def test_roi_charts_say_when_the_data_has_no_platform_revenue():
    from ml.forecasting import NO_REVENUE_METHOD

    from charts.plots import NO_REVENUE_PHRASE

    assert NO_REVENUE_PHRASE in NO_REVENUE_METHOD
    roi = roi_forecast_frame(DEMO[:3])
    none = roi.assign(predicted_roi=np.nan, roi_lower=np.nan, roi_upper=np.nan, method=NO_REVENUE_METHOD)
    assert "no platform revenue in the data" in _all_text(_figure_for("roi_forecast", none, CTX))
    some = roi.copy()
    some.loc[some["channel"] == "display", ["predicted_roi", "roi_lower", "roi_upper"]] = np.nan
    some.loc[some["channel"] == "display", "method"] = NO_REVENUE_METHOD
    fig = _figure_for("roi_forecast", some, CTX)
    assert "no platform revenue in the data for display" in _all_text(fig)
    assert set(_channel_face_colors(fig)) == {"search", "social"}
    ts = roi_timeseries_frame(DEMO[:3]).assign(roi=np.nan, roi_lower=np.nan, roi_upper=np.nan)
    assert "no platform revenue in the data" in _all_text(_figure_for("roi_timeseries", ts, CTX))
