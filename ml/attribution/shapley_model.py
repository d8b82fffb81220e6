"""Shapley-value attribution over channel sets, exact for any number of channels.

The coalition game splits into unanimity games, so exact values need one pass over the touches, not 2^n subsets.
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

# (row, channel) pairs up to this many are deduplicated with a bitmap instead of a sort.
_BITMAP_LIMIT = 1 << 26


def channel_set_weights(table: PathTable) -> sp.csc_matrix:
    """``(n_channels, n_rows)`` matrix whose column ``i`` holds ``1 / |T_i|`` on each channel of the
    distinct channel set ``T_i`` of path ``i`` (order and repeats ignored)."""
    n_channels, n_rows = table.n_channels, table.n_rows
    keys = table.token_rows * n_channels + table.codes
    if n_rows * n_channels <= _BITMAP_LIMIT:
        present = np.zeros(n_rows * n_channels, dtype=bool)
        present[keys] = True
        pairs = np.flatnonzero(present)
    else:
        pairs = np.unique(keys)
    rows, channels = np.divmod(pairs, n_channels)
    set_sizes = np.bincount(rows, minlength=n_rows)
    indptr = np.concatenate([[0], np.cumsum(set_sizes)])
    return sp.csc_matrix((1.0 / set_sizes[rows], channels, indptr), shape=(n_channels, n_rows))


def shapley(
    paths: pd.DataFrame | PathTable,
    n_bootstrap: int = 0,
    ci: float = DEFAULT_CI,
    seed: int | None = 0,
    *,
    path_col: str = PATH_COL,
    conv_col: str = CONV_COL,
    value_col: str | None = VALUE_COL,
    null_col: str = NULL_COL,
    sep: str = DEFAULT_SEP,
) -> pd.DataFrame:
    """Shapley-value attribution with the coalition value function, computed exactly.

    Value function: ``v(S)`` = conversions of the journeys whose set of channels is a subset of
    ``S`` (``v`` of the empty set is 0). A coalition is worth what its channels convert without
    help from any channel outside it. ``v`` is monotone, so every marginal contribution
    ``v(S + c) - v(S)`` is >= 0 and no channel gets negative credit. The value game is the same
    with ``total_conversion_value`` in place of conversions.

    Exact computation: ``v = sum_T w_T * u_T`` where ``w_T`` is the conversions of journeys whose
    channel set is exactly ``T`` and ``u_T(S) = 1 if T is a subset of S`` is the unanimity game of
    ``T``. The Shapley value is linear and splits ``u_T`` equally among the members of ``T`` (the
    others are null players), so ``phi_c = sum over T containing c of w_T / |T|`` -- each journey's
    conversions are shared equally among its *distinct* channels (Zhao et al. 2018, "simplified
    Shapley value"). This is exact for any number of channels in time linear in the touches, so
    no subset enumeration or sampling fallback is needed.

    Consequences worth knowing: the order of touches and repeated touches do not matter, and
    journeys without conversions (``total_null``) do not enter the game (use :func:`markov` for a
    model that learns from non-converting journeys). Efficiency holds: the values sum to ``v(N)``,
    the total conversions.

    Parameters
    ----------
    paths
        Path table (see :func:`ml.attribution.parse_paths`) or a parsed :class:`PathTable`.
    n_bootstrap, ci, seed
        Bootstrap draws for percentile intervals on ``share`` (0: none), coverage and seed; journeys
        are resampled as in :func:`ml.attribution.bootstrap.JourneyCells.draws`.
    path_col, conv_col, value_col, null_col, sep
        Input column names and channel separator.

    Returns
    -------
    DataFrame
        One row per channel, alphabetical: ``channel, shapley_value, attributed_conversions,
        attributed_value, share`` (+ ``share_lower, share_upper`` when ``n_bootstrap > 0``).
        ``shapley_value`` is the Shapley value of the conversion game, which by efficiency *is* the
        channel's attributed conversions; ``attributed_value`` is the Shapley value of the value
        game; ``share`` is ``shapley_value / total conversions``.
    """
    check_bootstrap_args(n_bootstrap, ci)
    table = parse_paths(paths, path_col=path_col, conv_col=conv_col, value_col=value_col, null_col=null_col, sep=sep)
    total_conversions = total_conversions_or_raise(table)
    weights = channel_set_weights(table)
    conversions = weights @ table.conversions
    value = weights @ table.value
    frame = pd.DataFrame(
        {
            "channel": table.channels.astype(str),
            "shapley_value": conversions,
            "attributed_conversions": conversions,
            "attributed_value": value,
            "share": conversions / total_conversions,
        }
    )
    frame.attrs.update(
        model="shapley",
        value_function="conversions of journeys whose channel set is a subset of the coalition",
        method="exact",
        total_conversions=total_conversions,
        total_value=float(table.value.sum()),
    )
    if n_bootstrap > 0:
        # Shares read only conversions, so the non-converting journeys can share one cell.
        cells = JourneyCells.from_table(table, pool_nulls=True)
        to_credit = cells.operator(weights, "conversions")

        def statistic(block: np.ndarray) -> np.ndarray:
            credit = to_credit @ block
            total = credit.sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(total > 0, credit / total, np.nan).T

        attach_share_intervals(frame, cells, statistic, n_bootstrap=n_bootstrap, ci=ci, seed=seed)
    return frame
