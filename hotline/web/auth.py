"""Bearer-token authentication for /api/ (a token from config for now; users come later)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from hotline.audit import Actor
from hotline.web.responses import json_error

PUBLIC_PATHS = frozenset({"/api/health", "/api/openapi.json"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# The request key holding the authenticated Actor (set by the auth middleware).
ACTOR = "hotline.actor"


def actor_of(request: web.Request) -> Actor:
    actor = request.get(ACTOR)
    if not isinstance(actor, Actor):
        raise web.HTTPUnauthorized(reason="missing or invalid bearer token")
    return actor


def require_role(request: web.Request, *roles: str) -> Actor:
    """The request's actor, if their role is one of `roles`; 403 otherwise."""
    actor = actor_of(request)
    if actor.role not in roles:
        raise web.HTTPForbidden(reason=f"this needs the role {' or '.join(roles)}")
    return actor


def bearer_auth(token: str) -> Middleware:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/") and request.path not in PUBLIC_PATHS:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return json_error(401, "missing or invalid bearer token")
            request[ACTOR] = Actor(username="api-token", role="admin")
        return await handler(request)

    return middleware


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths and wrong methods answer in the API's JSON error shape."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if request.path.startswith("/api/") and error.status >= 400:
            return json_error(error.status, error.reason)
        raise
