"""What a route needs from the app it runs in: create_app puts it on `app.state`, routes declare it here."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.settings import Settings
from service.dagster_bridge import DagsterBridge
from service.reader import WarehouseReader


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _reader(request: Request) -> WarehouseReader:
    return request.app.state.reader


def _bridge(request: Request) -> DagsterBridge:
    return request.app.state.bridge


AppSettings = Annotated[Settings, Depends(_settings)]
Reader = Annotated[WarehouseReader, Depends(_reader)]
Bridge = Annotated[DagsterBridge, Depends(_bridge)]
