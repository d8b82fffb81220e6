"""The chart and data HTTP service as a FastAPI app: one settings object, one warehouse reader and one
Dagster bridge on `app.state`, the routes in service.routes. `uvicorn service.app:app` serves it.
Every GET endpoint answers HEAD as well (HeadAsGet).
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import FastAPI

from core.settings import SERVING_URL_ENV, Settings, get_settings
from service.auth import check_token_settings
from service.dagster_bridge import DagsterBridge, RefreshLauncher
from service.events import DEFAULT_KEEPALIVE_SECONDS, DEFAULT_POLL_SECONDS
from service.errors import install_error_handlers
from service.reader import WarehouseReader
from service.routes import ROUTERS


class HeadAsGet:
    """HEAD on any GET endpoint: the GET's status and headers (Content-Length, ETag, X-Total-Count...),
    no body. FastAPI routes answer only the methods they declare, so HEAD would be 405; declaring it
    on every route would also put a second operation per path in the OpenAPI document."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message):
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # A copy: the server still knows the request was HEAD (uvicorn then sends no body either). The flag
        # lets an endless stream (GET /events) answer with its headers only.
        await self.app({**scope, "method": "GET", "spendwise.head": True}, receive, without_body)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    yield
    app.state.bridge.close()


def create_app(
    settings: Settings | None = None,
    *,
    dagster_instance: Any = None,
    refresh_launcher: RefreshLauncher | None = None,
    events_poll_seconds: float = DEFAULT_POLL_SECONDS,
    events_keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS,
) -> FastAPI:
    """The FastAPI app for one warehouse, charts folder and Dagster instance.

    settings: default `get_settings()` (SPENDWISE_WAREHOUSE_URL, SPENDWISE_CHARTS_DIR, DAGSTER_HOME).
    dagster_instance: an open DagsterInstance to read status from and launch into (default: the
        one in settings.dagster_home, opened at the first /status or /refresh).
    refresh_launcher: `launcher(instance) -> run_id`, starting a refresh without waiting (default:
        a detached child process running `python -m orchestration.cli refresh --run-id ID`).
    events_poll_seconds / events_keepalive_seconds: how often GET /events looks for changes, and the
        silence after which it sends a keep-alive comment.

    Raises ValueError when SPENDWISE_READ_TOKEN is set without SPENDWISE_API_TOKEN.
    """
    settings = settings or get_settings()
    check_token_settings(settings)
    app = FastAPI(
        title="Spendwise charts and data",
        version="1.0.0",
        summary="Charts rendered by the pipeline, the prediction tables behind them, pipeline status and refresh.",
        description=(
            "Read-only access to the `predictions` tables of the Spendwise warehouse (JSON with filters and "
            "pagination, CSV and Excel exports), the PNG charts of the last refresh, asset freshness from the "
            "Dagster instance, a way to start a refresh, live updates (server-sent events) and Prometheus "
            "metrics. `GET /` is a page for people. Every GET endpoint also answers HEAD (same status and "
            "headers, no body). Bearer tokens: SPENDWISE_API_TOKEN guards refreshes, scenarios and exports, "
            "SPENDWISE_READ_TOKEN (optional) everything else; with neither set no token is needed."
        ),
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.events_poll_seconds = events_poll_seconds
    app.state.events_keepalive_seconds = events_keepalive_seconds
    app.state.reader = WarehouseReader(settings.serving)  # the prediction tables: the serving database if set
    app.state.bridge = DagsterBridge(
        settings.dagster_home,
        instance=dagster_instance,
        launcher=refresh_launcher,
        # The refresh child writes to this app's warehouse and charts folder, whatever its environment says.
        child_env={"SPENDWISE_WAREHOUSE_URL": settings.warehouse.url,
                   "SPENDWISE_CHARTS_DIR": str(settings.charts_dir),
                   # and publishes where this app reads (empty: into the warehouse), required with Spark
                   SERVING_URL_ENV: settings.serving_url.url if settings.serving_url is not None else ""},
    )
    install_error_handlers(app)
    app.add_middleware(HeadAsGet)
    for router in ROUTERS:
        app.include_router(router)
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn service.app:app` finds the app; importing this module builds nothing.
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
