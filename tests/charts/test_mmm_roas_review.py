"""The media-mix ROAS chart marks the channels the model's review gate finds not identifiable."""

from __future__ import annotations

import itertools
from io import BytesIO

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.text import Text
from PIL import Image

from charts.palette import channel_colors
from charts.plots import PNG_SIGNATURE, _figure_for, mmm_roas_chart
from tests.charts.test_plots import CTX, _texts, mmm_frame

CHANNELS = ["radio", "ooh", "tv_north", "tv_south", "billboard", "cinema", "print", "sponsorship", "door_drops",
            "retail_media", "influencers", "ctv"]
REASONS = {
    "billboard": "spend hardly varies (coefficient of variation 0.00 < 0.1); variance inflation inf > 10",
    "tv_north": "adstocked spend moves with tv_south (correlation 0.93)",
    "ctv": "spend is never low (10th percentile 85% of the mean > 30%): ROAS rests on extrapolating the curve to zero spend",
}


def _reviewed(channels: list[str]):
    frame = mmm_frame(channels)
    frame["identifiable"] = [c not in REASONS for c in channels]
    frame["review_reason"] = [REASONS.get(c, "") for c in channels]
    return frame


@pytest.fixture(scope="module")
def figure():
    return _figure_for("mmm_roas", _reviewed(CHANNELS[:5]), CTX)


def test_png_renders_with_a_channel_that_is_not_identifiable():
    png = mmm_roas_chart(_reviewed(CHANNELS[:5]), CTX)
    assert png.startswith(PNG_SIGNATURE)
    assert Image.open(BytesIO(png)).size == (1200, 700)


def test_each_flagged_channel_is_labelled_with_its_first_reason(figure):
    texts = [t.get_text() for t in figure.findobj(Text)]
    assert "not identifiable: spend hardly varies, +1 more" in texts
    assert "not identifiable: spend moves with tv_south" in texts
    assert "not identifiable: ROAS not supported by the data" in texts  # the legend says what it means
    assert sum(t.startswith("not identifiable:") for t in texts) == 3  # two channels and the legend


def test_flagged_bars_are_crossed_out_but_keep_their_channel_colour(figure):
    colors = channel_colors(CHANNELS[:5])
    bars: dict[str, list] = {}
    for artist in figure.findobj(lambda a: (a.get_gid() or "").startswith("channel:")):
        bars.setdefault(artist.get_gid().split(":", 1)[1], []).append(artist)
    assert set(bars) == set(CHANNELS[:5])
    for channel, drawn in bars.items():
        assert len(drawn) == 2
        for bar in drawn:
            assert to_hex(bar.get_facecolor(), keep_alpha=False) == colors[channel]
            assert (bar.get_hatch() == "xx") == (channel in REASONS), channel
    names = {t.get_text(): to_hex(t.get_color()) for t in figure.axes[0].get_yticklabels()}
    assert names["billboard"] == names["tv_north"] != names["radio"]


def test_twelve_channels_with_three_flagged_keep_every_text_inside_and_apart():
    fig = _figure_for("mmm_roas", _reviewed(CHANNELS), CTX)
    texts = _texts(fig)
    width, height = fig.canvas.get_width_height()
    for text, box in texts:
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1, f"{text!r} clipped"
    for (ta, a), (tb, b) in itertools.combinations(texts, 2):
        overlap = min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1
        assert not overlap, f"{ta!r} overlaps {tb!r}"
    assert sum(t.startswith("not identifiable:") for t, _ in texts) == 4  # three channels and the legend


def test_a_table_without_the_verdict_draws_every_channel_as_before():
    fig = _figure_for("mmm_roas", mmm_frame(CHANNELS[:5]), CTX)
    assert not any("not identifiable" in t.get_text() for t in fig.findobj(Text))
    hatches = {a.get_hatch() for a in fig.findobj(lambda a: (a.get_gid() or "").startswith("channel:"))}
    assert hatches == {None, "//"}
    # A missing verdict (NULL) is no verdict: only an explicit false marks a channel.
    unknown = _reviewed(CHANNELS[:5]).assign(identifiable=np.nan)
    assert not any("not identifiable" in t.get_text() for t in _figure_for("mmm_roas", unknown, CTX).findobj(Text))
