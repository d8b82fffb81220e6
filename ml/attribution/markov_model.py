"""Markov-chain attribution by removal effects, solved exactly as an absorbing chain (no simulation).

Orders 1-3; bootstrap draws reuse the chain's structure, since transition counts are linear in path counts.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import splu
from threadpoolctl import ThreadpoolController

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

MAX_ORDER = 3
# Solver choice: a dense inverse while states^3 stays below the first limit; then a sparse LU
# per removal while (channels + 1) * states^3 stays below the second (the chains are
# expander-like, so LU fill-in grows fast: 24k states took 30-100 s per factorization); beyond
# that the certified bracketing iteration, whose cost grows only with the edges.
_DENSE_FLOP_LIMIT = 2e8
_SPARSE_LU_FLOP_LIMIT = 2e11
# Elements of the (draws, states, states) stack inverted at once (64 MB of float64).
_DENSE_BATCH_ELEMENTS = 8_000_000
# Key ranges up to this size are deduplicated with a lookup table instead of a sort.
_LOOKUP_LIMIT = 1 << 24
_THREADED_BLAS_MIN_SIZE = 32
_BRACKET_TOL = 1e-12
_BRACKET_MAX_ITER = 20_000
# Iterates (states x 2 x variants) held at once by the bracketing iteration.
_BRACKET_BATCH_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class _Chain:
    """Structure of the transient part of the chain, shared by the point estimate and all draws.

    States ``0..n_states-1`` are channel states (tuples of up to ``order`` recent channels); state
    ``n_states`` is the start. ``incidence_t[e, i]`` counts how often path ``i`` takes edge ``e``
    (``edge_from[e] -> edge_to[e]``), so edge counts are ``incidence_t @ journeys`` for the data and
    for every bootstrap draw alike; ``last_state_t`` does the same for each path's final state.
    """

    n_states: int
    contains: np.ndarray
    edge_from: np.ndarray
    edge_to: np.ndarray
    incidence_t: sp.csc_matrix
    last_state_t: sp.csc_matrix
    edge_source: sp.csr_matrix

    @property
    def start(self) -> int:
        return self.n_states

    def removed_states(self) -> np.ndarray:
        """``(1 + n_channels, n_states + 1)`` mask; row 0 removes nothing, row ``1 + c`` every state
        containing channel ``c``."""
        n_channels = self.contains.shape[1]
        removed = np.zeros((1 + n_channels, self.n_states + 1), dtype=bool)
        removed[1:, : self.n_states] = self.contains.T
        return removed


def _unique_inverse(keys: np.ndarray, upper: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` for non-negative keys below ``upper``.

    State and edge keys live in small ranges, where a lookup table (or, for wider ranges, a
    binary search over the few distinct keys) is several times faster than the sort in ``np.unique``.
    """
    if upper > _LOOKUP_LIMIT:
        return np.unique(keys, return_inverse=True)
    present = np.zeros(upper, dtype=bool)
    present[keys] = True
    uniques = np.flatnonzero(present)
    if upper <= max(keys.size, 1 << 16):
        lookup = np.cumsum(present, dtype=np.int64) - 1
        return uniques, lookup[keys]
    return uniques, np.searchsorted(uniques, keys)


def _build_chain(table: PathTable, order: int) -> _Chain:
    n_tokens = table.codes.size
    n_rows = table.n_rows
    n_channels = table.n_channels
    base = n_channels + 1
    pad = n_channels
    if float(base) ** order >= 2.0**62:
        raise ValueError(f"order={order} with {n_channels} channels overflows the state encoding; use a lower order.")
    starts = table.offsets[:-1]
    first = np.zeros(n_tokens, dtype=bool)
    first[starts] = True
    codes = table.codes.astype(np.int64)

    # A state is the tuple of the last `order` channels, encoded as base-(n_channels + 1) digits
    # with the most recent touch in the lowest digit and `pad` where the path is shorter.
    key = codes.copy()
    if order > 1:
        position = np.arange(n_tokens, dtype=np.int64) - np.repeat(starts, table.lengths)
        for lag in range(1, order):
            digit = np.full(n_tokens, pad, dtype=np.int64)
            digit[lag:] = codes[:-lag]
            digit[position < lag] = pad
            key += digit * base**lag
    state_keys, state = _unique_inverse(key, base**order)
    n_states = state_keys.size

    contains = np.zeros((n_states, base), dtype=bool)
    for lag in range(order):
        contains[np.arange(n_states), (state_keys // base**lag) % base] = True
    contains = contains[:, :n_channels]

    previous = np.empty(n_tokens, dtype=np.int64)
    previous[1:] = state[:-1]
    previous[first] = n_states
    edge_keys, edge = _unique_inverse(previous * (n_states + 1) + state, (n_states + 1) ** 2)
    n_edges = edge_keys.size
    # Column i of these CSC matrices is path i: its tokens' edges are exactly the CSR-style slice
    # offsets[i]:offsets[i + 1], so the matrices need no sorting (repeated edges simply add up).
    incidence_t = sp.csc_matrix((np.ones(n_tokens), edge, table.offsets), shape=(n_edges, n_rows))
    last = state[table.offsets[1:] - 1]
    last_state_t = sp.csc_matrix((np.ones(n_rows), last, np.arange(n_rows + 1)), shape=(n_states, n_rows))
    edge_from = edge_keys // (n_states + 1)
    edge_source = sp.csr_matrix((np.ones(n_edges), (np.arange(n_edges), edge_from)), shape=(n_edges, n_states + 1))
    return _Chain(
        n_states=n_states,
        contains=contains,
        edge_from=edge_from,
        edge_to=edge_keys % (n_states + 1),
        incidence_t=incidence_t,
        last_state_t=last_state_t,
        edge_source=edge_source,
    )


def _solver(chain: _Chain, bootstrap: bool = False) -> str:
    """``"dense"``, ``"sparse_lu"`` or ``"bracketed"``. Bootstrap draws of chains too big for the
    dense solve always iterate: one iteration sweep over all removals beats a LU per removal."""
    size = float(chain.n_states + 1)
    if size**3 <= _DENSE_FLOP_LIMIT:
        return "dense"
    if (1 + chain.contains.shape[1]) * size**3 <= _SPARSE_LU_FLOP_LIMIT and not bootstrap:
        return "sparse_lu"
    return "bracketed"


def _transition_parts(
    chain: _Chain, edge_counts: np.ndarray, conv_counts: np.ndarray, null_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-draw transition probabilities along the edges and into conversion, from counts.

    States a draw never visits have no outflow; their rows stay zero, which keeps the linear
    system regular (their probability of conversion is simply 0).
    """
    b = edge_counts.shape[0]
    outflow = np.asarray(edge_counts @ chain.edge_source)
    outflow[:, : chain.n_states] += conv_counts + null_counts
    inverse = np.divide(1.0, outflow, out=np.zeros_like(outflow), where=outflow > 0)
    edge_prob = edge_counts * inverse[:, chain.edge_from]
    conv_prob = np.zeros((b, chain.n_states + 1))
    conv_prob[:, : chain.n_states] = conv_counts * inverse[:, : chain.n_states]
    return edge_prob, conv_prob


@cache
def _thread_controller() -> ThreadpoolController:
    return ThreadpoolController()


def _single_threaded_blas(size: int) -> AbstractContextManager:
    """Batches of small LU solves are fastest on one BLAS thread; threaded OpenBLAS on a busy machine
    was measured 100x slower on 145-state systems. Tiny systems skip the (cached) library scan."""
    if size < _THREADED_BLAS_MIN_SIZE:
        return nullcontext()
    return _thread_controller().limit(limits=1, user_api="blas")


def _conversion_probabilities_dense(chain: _Chain, edge_prob: np.ndarray, conv_prob: np.ndarray) -> np.ndarray:
    """Absorption probabilities for the chain and every removal, from one dense inverse per draw.

    With ``N = (I - Q)^-1`` and ``x = N r``, removing the states ``R`` (pinning ``x_R = 0``) is a
    rank-``|R|`` correction: the modified solution is ``N (r + e_R lam)`` with ``lam`` chosen so
    that it vanishes on ``R``, giving ``P_R = x_s - N_sR (N_RR)^-1 x_R``. Every other equation of
    the chain is untouched, so this is the exact removal. At order 1 each removal is a single
    state and the correction is the scalar ``N_sc x_c / N_cc``.
    """
    size = chain.n_states + 1
    start = chain.start
    removed = chain.removed_states()[1:]
    removal_sets = [np.flatnonzero(row) for row in removed]
    single_states = all(r.size <= 1 for r in removal_sets)
    b = edge_prob.shape[0]
    result = np.empty((b, 1 + len(removal_sets)))
    step = max(1, _DENSE_BATCH_ELEMENTS // (size * size))
    for lo in range(0, b, step):
        hi = min(b, lo + step)
        system = np.broadcast_to(np.eye(size), (hi - lo, size, size)).copy()
        system[:, chain.edge_from, chain.edge_to] -= edge_prob[lo:hi]
        with _single_threaded_blas(size):
            inverse = np.linalg.inv(system)
        x = np.einsum("bij,bj->bi", inverse, conv_prob[lo:hi])
        base = x[:, start]
        result[lo:hi, 0] = base
        if single_states:
            has_state = np.array([r.size == 1 for r in removal_sets])
            states = np.array([r[0] if r.size else 0 for r in removal_sets])
            correction = inverse[:, start, states] * x[:, states] / inverse[:, states, states]
            result[lo:hi, 1:] = base[:, None] - np.where(has_state, correction, 0.0)
            continue
        for v, states in enumerate(removal_sets, start=1):
            if states.size == 0:
                result[lo:hi, v] = base
                continue
            block = inverse[:, states[:, None], states[None, :]]
            with _single_threaded_blas(states.size):
                weights = np.linalg.solve(block, x[:, states, None])[..., 0]
            result[lo:hi, v] = base - np.einsum("br,br->b", inverse[:, start, states], weights)
    return result


def _sparse_system(chain: _Chain, edge_prob: np.ndarray) -> sp.csr_matrix:
    size = chain.n_states + 1
    return sp.csr_matrix((edge_prob, (chain.edge_from, chain.edge_to)), shape=(size, size))


def _conversion_probabilities_sparse(chain: _Chain, edge_prob: np.ndarray, conv_prob: np.ndarray) -> np.ndarray:
    size = chain.n_states + 1
    removed = chain.removed_states()
    variants = removed.shape[0]
    result = np.empty((edge_prob.shape[0], variants))
    keep_sets = [np.flatnonzero(~removed[v]) for v in range(variants)]
    identity = sp.identity(size, format="csr")
    for i in range(edge_prob.shape[0]):
        system = identity - _sparse_system(chain, edge_prob[i])
        for v, keep in enumerate(keep_sets):
            if v > 0 and keep.size == size:
                result[i, v] = result[i, 0]
                continue
            reduced = system[keep][:, keep].tocsc()
            # The start state is the last index, and removal never drops it. States are numbered by
            # their channel tuple, and keeping that order gave less fill-in (and 1.5-2x faster
            # factorizations) than COLAMD or minimum-degree orderings on order-3 chains.
            lu = splu(reduced, permc_spec="NATURAL")
            result[i, v] = lu.solve(conv_prob[i, keep])[-1]
    return result


def _conversion_probabilities_bracketed(
    chain: _Chain, edge_prob: np.ndarray, conv_prob: np.ndarray
) -> np.ndarray:
    """Absorption probabilities of large chains, certified to a relative error of ``_BRACKET_TOL``.

    The fixed point ``x = Q x + r`` is iterated from below (``x = 0``) and from above (``x = 1``)
    for every removal at once (removed states are pinned at 0). Both sequences are monotone and
    converge to the exact solution, so their gap at the start state bounds the error; iteration
    stops once every gap is below ``_BRACKET_TOL`` times the base ``P(conversion)``, which makes
    removal effects exact to that tolerance. Removals are processed in batches to bound memory. A
    chain that has not converged within ``_BRACKET_MAX_ITER`` steps falls back to the sparse LU.
    """
    removed = chain.removed_states()
    n_variants = removed.shape[0]
    size = chain.n_states + 1
    start = chain.start
    keep_all = (~removed).T.astype(np.float64)
    batch = max(1, _BRACKET_BATCH_ELEMENTS // (2 * size))
    result = np.zeros((edge_prob.shape[0], n_variants))
    for i in range(edge_prob.shape[0]):
        if not conv_prob[i].any():
            # A draw without conversions: every absorption probability is exactly 0.
            continue
        transitions = _sparse_system(chain, edge_prob[i])
        # The base chain goes first, alone, so later batches can stop relative to its probability.
        groups = [np.array([0])] + [np.arange(lo, min(lo + batch, n_variants)) for lo in range(1, n_variants, batch)]
        for variants in groups:
            keep = np.tile(keep_all[:, variants], 2)
            rhs = conv_prob[i][:, None] * keep
            x = np.concatenate([np.zeros((size, variants.size)), keep[:, variants.size :]], axis=1)
            scale = result[i, 0]
            for _ in range(_BRACKET_MAX_ITER):
                x = keep * (transitions @ x) + rhs
                low, high = x[start, : variants.size], x[start, variants.size :]
                reference = scale if scale > 0 else low[0]
                if reference > 0 and (high - low).max() <= _BRACKET_TOL * reference:
                    result[i, variants] = 0.5 * (low + high)
                    break
            else:
                result[i] = _conversion_probabilities_sparse(chain, edge_prob[i : i + 1], conv_prob[i : i + 1])[0]
                break
    return result


def _removal_effects(
    chain: _Chain,
    edge_counts: np.ndarray,
    conv_counts: np.ndarray,
    null_counts: np.ndarray,
    bootstrap: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Removal effects ``(draws, n_channels)`` and base conversion probability ``(draws,)``."""
    edge_prob, conv_prob = _transition_parts(chain, edge_counts, conv_counts, null_counts)
    solver = _solver(chain, bootstrap)
    if solver == "dense":
        probabilities = _conversion_probabilities_dense(chain, edge_prob, conv_prob)
    elif solver == "sparse_lu":
        probabilities = _conversion_probabilities_sparse(chain, edge_prob, conv_prob)
    else:
        probabilities = _conversion_probabilities_bracketed(chain, edge_prob, conv_prob)
    base = probabilities[:, :1]
    with np.errstate(divide="ignore", invalid="ignore"):
        effects = np.where(base > 0, 1.0 - probabilities[:, 1:] / base, np.nan)
    # Removing states can only lower the absorption probability; clip rounding noise at 0.
    return np.clip(effects, 0.0, 1.0), probabilities[:, 0]


def _shares(effects: np.ndarray) -> np.ndarray:
    total = effects.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, effects / total, np.nan)


def markov(
    paths: pd.DataFrame | PathTable,
    order: int = 1,
    collapse_repeats: bool = True,
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
    """Markov-chain (removal effect) attribution, solved exactly.

    The chain: every journey runs ``start -> s_1 -> ... -> s_L`` and then into ``conversion`` or
    ``null``. Transition probabilities are maximum-likelihood estimates from the path counts (each
    path contributes ``total_conversions + total_null`` traversals of its edges; its last state
    goes to ``conversion`` ``total_conversions`` times and to ``null`` ``total_null`` times).
    ``P(conversion)`` from ``start`` is the exact absorption probability, the solution of
    ``(I - Q) x = r``: for small chains one dense inverse per draw, with each removal an exact
    low-rank correction of it; for medium ones (e.g. order 3 at 12 channels) a sparse LU per
    removal. Chains too large for LU fill-in (e.g. order 2 at 200 channels), and bootstrap draws
    of any chain too big for the dense solve, use a monotone bracketing iteration: lower and upper
    bounds that provably enclose the solution are tightened until they agree to 1e-12 relative.
    ``attrs['solver']`` says which was used.

    Conventions:

    - ``order = k`` (1-3): a state is the tuple of the last ``k`` channels of the path; the first
      ``k - 1`` states of a path are the shorter prefixes, so paths shorter than ``k`` are kept.
    - ``collapse_repeats=True`` merges consecutive repeats first (``a > a > b`` is ``a > b``), so
      a channel has no self-loop; ``False`` keeps every touch, giving self-transitions. At order 1
      this changes nothing (a self-loop only rescales a state's other exits, so absorption
      probabilities are unchanged); from order 2 it does, since ``(a, a)`` is a state of its own.
    - ``P(conversion)`` of the fitted chain equals the observed conversion rate (conversions /
      journeys) at every order, a property of the maximum-likelihood chain; it is reported in
      ``attrs['conversion_probability']`` as a check.
    - Removal effect of channel ``c``: ``1 - P(conversion | c removed) / P(conversion)``, where
      removing ``c`` sends every transition into a state containing ``c`` to ``null``.
      Removal effects lie in ``[0, 1]``: removing states can only lower the absorption
      probability, so this model never gives negative credit. They do not sum to 1.
    - Credit: ``share = removal_effect / sum(removal_effect)``; ``attributed_conversions`` and
      ``attributed_value`` are ``share`` times the table's total conversions and total value.

    Parameters
    ----------
    paths
        Path table (see :func:`ml.attribution.parse_paths`) or a parsed :class:`PathTable`.
    order
        Markov order, 1 to 3.
    collapse_repeats
        Merge consecutive repeated channels before building the chain.
    n_bootstrap
        Bootstrap draws for share intervals (0: none; 200 is a good default). Draws resample
        journeys (:meth:`ml.attribution.JourneyCells.draws`) and re-solve the chain.
    ci
        Interval coverage, percentile method.
    seed
        Seed for the bootstrap.
    path_col, conv_col, value_col, null_col, sep
        Input column names and channel separator.

    Returns
    -------
    DataFrame
        One row per channel, alphabetical: ``channel, removal_effect, attributed_conversions,
        attributed_value, share`` plus ``share_lower, share_upper`` when ``n_bootstrap > 0``.
        ``attrs`` holds ``model, order, collapse_repeats, n_states, conversion_probability,
        total_conversions, total_value, solver`` and the bootstrap diagnostics.
    """
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 1 <= order <= MAX_ORDER:
        raise ValueError(f"order must be an integer from 1 to {MAX_ORDER}, got {order!r}.")
    check_bootstrap_args(n_bootstrap, ci)
    table = parse_paths(paths, path_col=path_col, conv_col=conv_col, value_col=value_col, null_col=null_col, sep=sep)
    total_conversions = total_conversions_or_raise(table)
    total_value = float(table.value.sum())
    if collapse_repeats:
        table = table.collapse_repeats()
    table = table.select_rows(table.journeys > 0)
    chain = _build_chain(table, int(order))

    edge_counts = (chain.incidence_t @ table.journeys)[None, :]
    conv_counts = (chain.last_state_t @ table.conversions)[None, :]
    null_counts = (chain.last_state_t @ table.nulls)[None, :]
    effects, probability = _removal_effects(chain, edge_counts, conv_counts, null_counts)
    share = _shares(effects)[0]

    frame = pd.DataFrame(
        {
            "channel": table.channels.astype(str),
            "removal_effect": effects[0],
            "attributed_conversions": share * total_conversions,
            "attributed_value": share * total_value,
            "share": share,
        }
    )
    frame.attrs.update(
        model="markov",
        order=int(order),
        collapse_repeats=bool(collapse_repeats),
        n_states=int(chain.n_states),
        conversion_probability=float(probability[0]),
        total_conversions=total_conversions,
        total_value=total_value,
        solver=_solver(chain),
    )
    if n_bootstrap > 0:
        cells = JourneyCells.from_table(table)
        # Transition counts are linear in path counts: one sparse product per chunk of draws.
        to_edges = cells.operator(chain.incidence_t, "journeys")
        to_conversions = cells.operator(chain.last_state_t, "conversions")
        to_nulls = cells.operator(chain.last_state_t, "nulls")

        def statistic(block: np.ndarray) -> np.ndarray:
            counts = (to_edges @ block).T, (to_conversions @ block).T, (to_nulls @ block).T
            return _shares(_removal_effects(chain, *counts, bootstrap=True)[0])

        attach_share_intervals(frame, cells, statistic, n_bootstrap=n_bootstrap, ci=ci, seed=seed)
    return frame
