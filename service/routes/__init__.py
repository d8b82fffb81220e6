"""One APIRouter per area of the service: the page, charts, data, spend scenarios, the pipeline, and live
updates and metrics."""

from service.routes import charts, data, live, page, pipeline, scenarios

ROUTERS = (page.router, charts.router, data.router, scenarios.router, pipeline.router, live.router)
