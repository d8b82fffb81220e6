"""One APIRouter per area of the service: the page, charts, data, spend scenarios and the pipeline."""

from service.routes import charts, data, page, pipeline, scenarios

ROUTERS = (page.router, charts.router, data.router, scenarios.router, pipeline.router)
