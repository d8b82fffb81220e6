"""Media-mix model: geometric adstock + Hill saturation per channel, non-negative ridge regression.
Turns daily spend and revenue into contributions, ROAS, marginal ROAS and response curves with intervals.
"""

from ml.mmm.fitting import *  # noqa: F401,F403
from ml.mmm.fitting import __all__, _CHANNEL_COLUMNS  # noqa: F401
