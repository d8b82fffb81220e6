"""Dagster assets and asset checks, one module per domain; thin wrappers around ml/ and charts/."""

from assets.attribution import attribution
from assets.channel_checks import CHANNEL_CHECKS
from assets.charts import chart_assets
from assets.forecasts import channel_forecasts
from assets.media_mix import budget_recommendation, media_mix_model
from assets.quality_gates import QUALITY_CHECKS
from assets.scenarios import spend_scenarios
from assets.triangulation import channel_triangulation

ASSETS: list = [attribution, media_mix_model, budget_recommendation, spend_scenarios, channel_forecasts,
                channel_triangulation, *chart_assets]
ASSET_CHECKS: list = [*QUALITY_CHECKS, *CHANNEL_CHECKS]
