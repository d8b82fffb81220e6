"""Multi-touch attribution on journey path tables: Markov removal effects, Shapley values, heuristics.

Pure pandas/numpy/scipy; every model reads ChannelAttribution-style path tables and can bootstrap its shares.
"""

from ml.attribution.bootstrap import JourneyCells, percentile_interval
from ml.attribution.heuristic_models import HEURISTIC_MODELS, heuristics
from ml.attribution.markov_model import markov
from ml.attribution.paths import PathTable, parse_paths, read_paths
from ml.attribution.shapley_model import shapley

__all__ = [
    "HEURISTIC_MODELS",
    "JourneyCells",
    "PathTable",
    "heuristics",
    "markov",
    "parse_paths",
    "percentile_interval",
    "read_paths",
    "shapley",
]
