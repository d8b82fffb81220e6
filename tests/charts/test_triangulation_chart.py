"""The triangulation chart: per channel, platform claim, Markov credit and media-mix incrementality side by side."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.text import Text
from PIL import Image

from charts.palette import channel_colors
from charts.plots import PNG_SIGNATURE, _figure_for, channel_triangulation_chart
from tests.charts.test_plots import CTX, triangulation_frame

CHANNELS = ["search", "social", "display", "podcast"]


@pytest.fixture(scope="module")
def figure():
    return _figure_for("channel_triangulation", triangulation_frame(CHANNELS), CTX)


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_visible()]


def test_png_is_1200x700():
    png = channel_triangulation_chart(triangulation_frame(CHANNELS), CTX)
    assert png.startswith(PNG_SIGNATURE)
    assert Image.open(BytesIO(png)).size == (1200, 700)


def test_three_views_per_channel_largest_on_top_with_ratios_on_the_right(figure):
    frame = triangulation_frame(CHANNELS)
    ax = figure.axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    size = frame.set_index("channel")[["platform_revenue", "attributed_revenue", "mmm_contribution"]].max(axis=1)
    assert names == list(size.sort_values().index)  # barh draws bottom-up: the largest channel is on top
    assert len(ax.patches) == 3 * len(CHANNELS)
    texts = _texts(figure)
    for label in ("platform-claimed revenue", "Markov-attributed revenue", "incremental revenue (media mix)"):
        assert label in texts
    podcast = frame.set_index("channel").loc["podcast"]
    assert f"claimed {podcast['platform_overclaim']:.2f}× · Markov {podcast['attribution_vs_incrementality']:.2f}×" in texts


def test_missing_claims_and_unidentifiable_channels_are_said(figure):
    texts = _texts(figure)
    assert "no platform revenue reported" in texts  # search: the export has no revenue
    assert any(t.startswith("claimed n/a · Markov") for t in texts)
    # display: no ratio to an incrementality the data cannot identify, only the reason
    assert "ratios: not identifiable" in texts
    display_row = triangulation_frame(CHANNELS).set_index("channel").loc["display"]
    assert not any(f"{display_row['attribution_vs_incrementality']:.2f}×" in t for t in texts)
    assert "not identifiable: incrementality and ratios not supported by the data" in texts
    display = next(t for t in figure.axes[0].get_yticklabels() if t.get_text() == "display")
    assert to_hex(display.get_color()) != to_hex("#222222")


def test_channel_swatches_keep_the_channel_colours(figure):
    colors = channel_colors(CHANNELS)
    swatches = {a.get_gid().split(":", 1)[1]: to_hex(a.get_color())
                for a in figure.findobj(lambda a: (a.get_gid() or "").startswith("channel:"))}
    assert swatches == {c: colors[c] for c in CHANNELS}


def test_bad_input_is_refused_with_the_reason():
    frame = triangulation_frame(CHANNELS)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['mmm_contribution'\]"):
        channel_triangulation_chart(frame.drop(columns="mmm_contribution"), CTX)
    with pytest.raises(ValueError, match="one row per channel"):
        channel_triangulation_chart(frame.iloc[[0, 0, 1]], CTX)
    with pytest.raises(ValueError, match="is empty"):
        channel_triangulation_chart(frame.iloc[:0], CTX)
    assert np.isnan(frame["platform_revenue"].iloc[0])
