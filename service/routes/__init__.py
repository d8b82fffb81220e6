"""One APIRouter per area of the service: the page, charts, data and the pipeline."""

from service.routes import charts, data, page, pipeline

ROUTERS = (page.router, charts.router, data.router, pipeline.router)
