"""The one channel palette every Spendwise chart uses, so a channel keeps its colour everywhere.

Fixed colours for the demo channels, a stable hash-based pick from a qualitative pool for the rest.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

__all__ = ["BASELINE_COLOR", "CHANNEL_COLORS", "FALLBACK_POOL", "channel_colors"]

# Colour-blind-aware tab10 hues; grey and olive stay out so grey can mean "baseline" and olive
# can serve the first unknown channels without clashing with a demo channel.
CHANNEL_COLORS: dict[str, str] = {
    "search": "#1f77b4",
    "social": "#ff7f0e",
    "display": "#2ca02c",
    "video": "#d62728",
    "email": "#9467bd",
    "affiliate": "#8c564b",
    "shopping": "#e377c2",
    "podcast": "#17becf",
}

BASELINE_COLOR = "#a6a6a6"

# Hues chosen to stay apart from the fixed ones and from each other (checked by eye on bars,
# areas and heatmap swatches): darker distinct hues first, then light tints of unused families.
FALLBACK_POOL: tuple[str, ...] = (
    "#bcbd22",  # olive
    "#393b79",  # indigo
    "#f3c300",  # yellow
    "#b3446c",  # raspberry
    "#1b5e5a",  # dark teal
    "#aec7e8",  # light blue
    "#ffbb78",  # light orange
    "#98df8a",  # light green
    "#ff9896",  # salmon
    "#c5b0d5",  # lavender
    "#c2b280",  # buff
    "#f7b6d2",  # light pink
)


def _key(channel: object) -> str:
    return str(channel).strip().lower()


def channel_colors(channels: Iterable[object]) -> dict[str, str]:
    """Map each channel name to a hex colour, the same one in every chart and every call.

    Parameters
    ----------
    channels:
        Channel names in any order; duplicates are ignored. Matching is case- and
        whitespace-insensitive, the returned keys are the names as given (``str(name)``).

    Conventions
    -----------
    - The eight demo channels (search, social, display, video, email, affiliate, shopping,
      podcast) always get their fixed colour from ``CHANNEL_COLORS``.
    - ``baseline`` gets ``BASELINE_COLOR`` (grey), the colour of non-media revenue.
    - Any other channel gets ``FALLBACK_POOL[crc32(name) % len(pool)]``. When two unknown
      channels of the same call hash to the same slot, the one later in name order moves to
      the next free slot, so up to 20 channels (8 fixed + 12 pool) are always distinct. A
      channel's colour therefore depends only on its name and, after a collision, on the
      other unknown names in the call: charts of one pipeline run share one channel set and
      so share colours. Beyond 12 unknown channels the pool repeats.

    Returns ``{name: "#rrggbb"}`` with one entry per distinct name.
    """
    names = list(dict.fromkeys(str(c) for c in channels))
    colors: dict[str, str] = {}
    unknown: list[str] = []
    for name in names:
        key = _key(name)
        if key in CHANNEL_COLORS:
            colors[name] = CHANNEL_COLORS[key]
        elif key == "baseline":
            colors[name] = BASELINE_COLOR
        else:
            unknown.append(name)

    taken: dict[str, int] = {}
    pool_size = len(FALLBACK_POOL)
    # Several spellings of one name (e.g. "TV" and "tv") are one channel and share a slot.
    for key in sorted({_key(n) for n in unknown}):
        slot = zlib.crc32(key.encode("utf-8")) % pool_size
        if len(taken) < pool_size:
            used = set(taken.values())
            while slot in used:
                slot = (slot + 1) % pool_size
        taken[key] = slot
    for name in unknown:
        colors[name] = FALLBACK_POOL[taken[_key(name)]]
    return colors
