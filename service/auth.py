"""Who may call what: bearer tokens from Settings (SPENDWISE_API_TOKEN may do everything, SPENDWISE_READ_TOKEN
only read), compared in constant time, and the guard that keeps other web pages from changing state.

A caller is known by the token's name ("api-token", "read-token" or "anonymous"), never by its value:
that name is what the audit log records. No token value is logged, echoed or put in an error message.
"""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.settings import API_TOKEN_ENV, READ_TOKEN_ENV, Settings
from service.errors import ApiError

API_TOKEN, READ_TOKEN, ANONYMOUS = "api-token", "read-token", "anonymous"
REALM = 'Bearer realm="spendwise"'
# The body types a plain HTML form (or a fetch without a CORS preflight) can send. A state-changing
# endpoint takes JSON or no body, so one of these can only come from a page trying to act for a user.
FORM_CONTENT_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})

bearer = HTTPBearer(
    scheme_name="bearerAuth", auto_error=False,
    description=f"`Authorization: Bearer <token>`. With {API_TOKEN_ENV} set, POST /refresh, POST /scenarios and "
    f"exports (format=csv or xlsx) need that token; with {READ_TOKEN_ENV} set, every other endpoint needs either "
    "token. With neither set (local use), no token is needed.",
)


def check_token_settings(settings: Settings) -> None:
    """Refuse a read token without an API token: reads would be protected and state changes open."""
    if settings.read_token and not settings.api_token:
        raise ValueError(
            f"{READ_TOKEN_ENV} is set but {API_TOKEN_ENV} is not: reads would need a token while POST /refresh "
            f"would not; set {API_TOKEN_ENV} too (a different, long random value)"
        )


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _unauthorized(detail: str, invalid: bool) -> ApiError:
    challenge = f'{REALM}, error="invalid_token"' if invalid else REALM
    return ApiError(401, "unauthorized", detail, {"WWW-Authenticate": challenge})


def identify(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> str:
    """The caller's token name. A token that matches neither configured token is refused (401) at once;
    with no token configured, any Authorization header is ignored (nothing to check it against)."""
    if not (settings.api_token or settings.read_token) or credentials is None:
        return ANONYMOUS
    # Both comparisons always run, so the time taken does not tell which token came close.
    is_api = _same(credentials.credentials, settings.api_token)
    is_read = _same(credentials.credentials, settings.read_token)
    if is_api:
        return API_TOKEN
    if is_read:
        return READ_TOKEN
    raise _unauthorized("the bearer token is not valid for this service; check the token you were given "
                        f"({API_TOKEN_ENV} or {READ_TOKEN_ENV} on the server)", invalid=True)


def require_read(settings: Settings, caller: str) -> None:
    if settings.read_token and caller == ANONYMOUS:
        raise _unauthorized(f"this endpoint needs a bearer token: send `Authorization: Bearer <token>` with the "
                            f"read token ({READ_TOKEN_ENV}) or the API token ({API_TOKEN_ENV})", invalid=False)


def require_write(settings: Settings, caller: str, what: str) -> None:
    """`what`: the action refused, for the message (e.g. "starting a refresh")."""
    if not settings.api_token:
        return
    if caller == ANONYMOUS:
        raise _unauthorized(f"{what} needs the API token: send `Authorization: Bearer <token>` with the value "
                            f"of {API_TOKEN_ENV}", invalid=False)
    if caller != API_TOKEN:
        raise ApiError(403, "forbidden", f"the read token may only read; {what} needs the API token ({API_TOKEN_ENV})")


def refuse_cross_site(request: Request) -> None:
    """Refuse what a page on another site can make a browser send: a form-encoded body (415, always),
    and, while no API token is configured, any request whose Origin is not this server (403).

    With an API token the bearer header is the guard: a form cannot set it, and a script on another
    origin that tries gets no CORS permission from this service.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FORM_CONTENT_TYPES:
        raise ApiError(415, "unsupported_media_type",
                       f"this endpoint takes a JSON body (Content-Type: application/json) or none, not {content_type}")
    settings: Settings = request.app.state.settings
    origin = request.headers.get("origin")
    if settings.api_token or origin is None:
        return
    host = request.headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
        raise ApiError(403, "cross_origin",
                       "requests from another web site may not change state here; call the API directly "
                       f"(curl, scripts), or set {API_TOKEN_ENV} on the server and send it as a bearer token")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


def caller_for_read(request: Request, credentials: Credentials) -> str:
    settings: Settings = request.app.state.settings
    caller = identify(settings, credentials)
    require_read(settings, caller)
    return caller


def caller_for_write(request: Request, credentials: Credentials) -> str:
    settings: Settings = request.app.state.settings
    caller = identify(settings, credentials)
    require_write(settings, caller, f"{request.method} {request.url.path}")
    refuse_cross_site(request)
    return caller


ReadCaller = Annotated[str, Depends(caller_for_read)]
WriteCaller = Annotated[str, Depends(caller_for_write)]
