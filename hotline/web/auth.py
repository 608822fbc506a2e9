"""Who is calling /api/: per-user bearer tokens (see hotline/people), roles, JSON errors.

`bearer_auth` resolves `Authorization: Bearer <token>` through the app's `People` service
(`app[PEOPLE]`, installed by `hotline.people.http.add_routes`) and puts the Actor in
`request[ACTOR]`; handlers call `actor_of(request)` or `require_role(request, ...)`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from hotline.audit import Actor
from hotline.people.services import People
from hotline.web.responses import json_error

log = structlog.get_logger(__name__)

# Public on every method; and the sign-in itself.
PUBLIC_PATHS = frozenset({"/api/health", "/api/openapi.json"})
PUBLIC_ROUTES = frozenset({("POST", "/api/auth/login")})
# Prometheus metrics: open to this machine (a local scraper); from anywhere else they need
# a token of one of these roles. A reverse proxy on this machine makes every request
# local: do not proxy /metrics.
METRICS_PATH = "/metrics"
METRICS_ROLES = ("admin", "supervisor")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PEOPLE: web.AppKey[People] = web.AppKey("people", People)

# The request keys holding the authenticated Actor and the id of the token it presented.
ACTOR: web.RequestKey[Actor] = web.RequestKey("actor", Actor)
TOKEN_ID: web.RequestKey[int] = web.RequestKey("token_id", int)

UNAUTHORIZED = "missing or invalid bearer token"


def actor_of(request: web.Request) -> Actor:
    actor = request.get(ACTOR)
    if not isinstance(actor, Actor):
        raise web.HTTPUnauthorized(reason=UNAUTHORIZED)
    return actor


def require_role(request: web.Request, *roles: str) -> Actor:
    """The request's actor, if their role is one of `roles`; 403 otherwise."""
    actor = actor_of(request)
    if actor.role not in roles:
        raise web.HTTPForbidden(reason=f"this needs the role {' or '.join(roles)}")
    return actor


def is_loopback(remote: str | None) -> bool:
    """Whether a peer address is this machine (127.0.0.0/8, ::1, IPv4-mapped loopback)."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_public(request: web.Request) -> bool:
    if request.path == METRICS_PATH:
        return is_loopback(request.remote)
    return (not request.path.startswith("/api/") or request.path in PUBLIC_PATHS
            or (request.method, request.path) in PUBLIC_ROUTES)


def bearer_token(header: str) -> str | None:
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _unauthorized() -> web.Response:
    response = json_error(401, UNAUTHORIZED)
    response.headers["WWW-Authenticate"] = 'Bearer realm="hotline12355"'
    return response


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_public(request):
        return await handler(request)
    people = request.app.get(PEOPLE)
    if people is None:  # fail closed: an app wired without people admits nobody
        log.error("no People service on the app: add hotline.people.http routes")
        return json_error(503, "authentication is not configured")
    token = bearer_token(request.headers.get("Authorization", ""))
    authenticated = None if token is None else await people.authenticate(token)
    if authenticated is None:
        return _unauthorized()
    request[ACTOR] = authenticated.actor
    request[TOKEN_ID] = authenticated.token_id
    return await handler(request)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths, wrong methods, 401 and 403 answer in the API's JSON error shape."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if request.path.startswith("/api/") and error.status >= 400:
            response = json_error(error.status, error.reason)
            if error.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="hotline12355"'
            if error.status == 405 and "Allow" in error.headers:
                response.headers["Allow"] = error.headers["Allow"]
            return response
        raise
