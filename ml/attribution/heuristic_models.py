"""Rule-based attribution on path tables: first touch, last touch and linear credit.

Each rule is a fixed (channel x path) credit matrix, so point estimates and bootstrap draws are one product.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.attribution.bootstrap import DEFAULT_CI, JourneyCells, attach_share_intervals, check_bootstrap_args
from ml.attribution.paths import (
    CONV_COL,
    DEFAULT_SEP,
    NULL_COL,
    PATH_COL,
    VALUE_COL,
    PathTable,
    parse_paths,
    total_conversions_or_raise,
)

HEURISTIC_MODELS = ("first_touch", "last_touch", "linear")


def credit_matrices(table: PathTable, collapse_repeats: bool = False) -> dict[str, sp.csc_matrix]:
    """``(n_channels, n_rows)`` credit matrices per rule: column ``i`` says how path ``i``'s
    conversions are split among channels (each column sums to 1)."""
    n_channels, n_rows = table.n_channels, table.n_rows
    ones = np.ones(n_rows)
    one_per_row = np.arange(n_rows + 1)
    first = sp.csc_matrix((ones, table.codes[table.offsets[:-1]], one_per_row), shape=(n_channels, n_rows))
    last = sp.csc_matrix((ones, table.codes[table.offsets[1:] - 1], one_per_row), shape=(n_channels, n_rows))
    touches = table.collapse_repeats() if collapse_repeats else table
    # Repeated channels in a path appear as repeated entries in the column; sparse algebra adds them.
    linear = sp.csc_matrix(
        (np.repeat(1.0 / touches.lengths, touches.lengths), touches.codes, touches.offsets),
        shape=(n_channels, n_rows),
    )
    return {"first_touch": first, "last_touch": last, "linear": linear}


def heuristics(
    paths: pd.DataFrame | PathTable,
    n_bootstrap: int = 0,
    ci: float = DEFAULT_CI,
    seed: int | None = 0,
    *,
    collapse_repeats: bool = False,
    path_col: str = PATH_COL,
    conv_col: str = CONV_COL,
    value_col: str | None = VALUE_COL,
    null_col: str = NULL_COL,
    sep: str = DEFAULT_SEP,
) -> pd.DataFrame:
    """First-touch, last-touch and linear attribution of conversions and value.

    Rules, per path with touches ``t_1 .. t_L`` (as written in the path string):

    - ``first_touch``: all of the path's conversions and value go to ``t_1``.
    - ``last_touch``: all go to ``t_L``.
    - ``linear``: each *touch* gets ``1 / L``, so a channel touched twice in a path of four
      touches gets half. Repeats are **not** collapsed by default, so this equals linear credit
      computed in SQL over raw touch rows; ``collapse_repeats=True`` merges consecutive repeats
      first (``a > a > b`` is then ``a > b``). First and last touch are the same either way.

    Every rule gives each path's conversions out in full, so each model's attributed conversions
    sum to the total conversions and credit is never negative.

    Parameters
    ----------
    paths
        Path table (see :func:`ml.attribution.parse_paths`) or a parsed :class:`PathTable`.
    n_bootstrap, ci, seed
        Bootstrap draws for percentile intervals on ``share`` (0: none), coverage and seed.
    collapse_repeats
        Merge consecutive repeated channels before linear credit.
    path_col, conv_col, value_col, null_col, sep
        Input column names and channel separator.

    Returns
    -------
    DataFrame
        Long format, one row per model and channel (models in the order first_touch, last_touch,
        linear; channels alphabetical, all channels for every model): ``model, channel,
        attributed_conversions, attributed_value, share`` (+ ``share_lower, share_upper`` when
        ``n_bootstrap > 0``), where ``share`` is the channel's fraction of that model's conversions.
    """
    check_bootstrap_args(n_bootstrap, ci)
    table = parse_paths(paths, path_col=path_col, conv_col=conv_col, value_col=value_col, null_col=null_col, sep=sep)
    total_conversions = total_conversions_or_raise(table)
    matrices = credit_matrices(table, collapse_repeats=collapse_repeats)
    stacked = sp.vstack([matrices[name] for name in HEURISTIC_MODELS], format="csc")
    conversions = stacked @ table.conversions
    n_channels = table.n_channels
    frame = pd.DataFrame(
        {
            "model": np.repeat(np.array(HEURISTIC_MODELS, dtype=object), n_channels),
            "channel": np.tile(table.channels.astype(str), len(HEURISTIC_MODELS)),
            "attributed_conversions": conversions,
            "attributed_value": stacked @ table.value,
            "share": conversions / total_conversions,
        }
    )
    frame.attrs.update(
        model="heuristics",
        collapse_repeats=bool(collapse_repeats),
        total_conversions=total_conversions,
        total_value=float(table.value.sum()),
    )
    if n_bootstrap > 0:
        # Shares read only conversions, so the non-converting journeys can share one cell.
        cells = JourneyCells.from_table(table, pool_nulls=True)
        to_credit = cells.operator(stacked, "conversions")

        def statistic(block: np.ndarray) -> np.ndarray:
            credit = (to_credit @ block).reshape(len(HEURISTIC_MODELS), n_channels, -1)
            total = credit.sum(axis=1, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                shares = np.where(total > 0, credit / total, np.nan)
            return shares.reshape(len(HEURISTIC_MODELS) * n_channels, -1).T

        attach_share_intervals(frame, cells, statistic, n_bootstrap=n_bootstrap, ci=ci, seed=seed)
    return frame
