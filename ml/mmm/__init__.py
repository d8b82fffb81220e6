"""Media-mix model: geometric or delayed adstock + Hill or exponential
saturation per channel, non-negative ridge regression.
Turns daily spend and revenue into contributions, ROAS, marginal ROAS and response curves with intervals.

Modules: ``transforms`` (adstock, saturation curves), ``data`` (input frame, validation, model window),
``regression`` (non-negative ridge, cross-validation), ``search`` (curve search and weights),
``robust`` (level shift, outlier days), ``bootstrap`` (draws, intervals), ``review`` (the per-channel review gate), ``response`` (response model and its parameter table), ``result``
(the fitted model's tables) and ``fitting`` (:func:`fit_media_mix_model`, tying them together).
"""

from ml.mmm.data import daily_frame
from ml.mmm.fitting import DEFAULT_CURVE_HISTORY_DAYS, fit_media_mix_model
from ml.mmm.response import RESPONSE_PARAMETER_COLUMNS, ChannelResponse, ResponseModel
from ml.mmm.review import REVIEW_COLUMNS, ReviewThresholds, review_channels
from ml.mmm.result import CHANNEL_COLUMNS, RESPONSE_CURVE_COLUMNS, MediaMixResult
from ml.mmm.search import (
    DEFAULT_ALPHA_GRID,
    DEFAULT_DECAY_GRID,
    DEFAULT_DELAY_GRID,
    DEFAULT_HALF_GRID,
    DELAYED_DELAY_GRID,
    DEFAULT_HYPERPARAMETER_PRIOR,
    DEFAULT_SATURATION_FAMILIES,
    DEFAULT_SHAPE_GRID,
)
from ml.mmm.transforms import (
    SATURATION_FAMILIES,
    delayed_adstock,
    exponential_saturation,
    geometric_adstock,
    hill_saturation,
    hill_saturation_derivative,
    saturation,
)


__all__ = [
    "CHANNEL_COLUMNS",
    "DEFAULT_CURVE_HISTORY_DAYS",
    "DEFAULT_ALPHA_GRID",
    "DEFAULT_DECAY_GRID",
    "DEFAULT_DELAY_GRID",
    "DEFAULT_HALF_GRID",
    "DEFAULT_HYPERPARAMETER_PRIOR",
    "DEFAULT_SATURATION_FAMILIES",
    "DEFAULT_SHAPE_GRID",
    "DELAYED_DELAY_GRID",
    "RESPONSE_CURVE_COLUMNS",
    "SATURATION_FAMILIES",
    "RESPONSE_PARAMETER_COLUMNS",
    "REVIEW_COLUMNS",
    "ChannelResponse",
    "MediaMixResult",
    "ResponseModel",
    "ReviewThresholds",
    "daily_frame",
    "fit_media_mix_model",
    "delayed_adstock",
    "exponential_saturation",
    "geometric_adstock",
    "hill_saturation",
    "hill_saturation_derivative",
    "review_channels",
    "saturation",
]
