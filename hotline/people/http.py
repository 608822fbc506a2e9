"""HTTP handlers: /api/auth/login, /api/auth/logout, /api/me, and /api/users (admins only)."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from hotline.clock import Clock
from hotline.db.models import Role
from hotline.people.schemas import (
    IssuedTokenOut,
    LoginIn,
    LoginOut,
    TokenCreate,
    TokenList,
    TokenOut,
    UserCreate,
    UserList,
    UserOut,
    UserPatch,
)
from hotline.people.services import (
    Conflict,
    InvalidCredentials,
    InvalidInput,
    LockedOut,
    NotFound,
    People,
    PeopleError,
    Policy,
)
from hotline.web.auth import PEOPLE, TOKEN_ID, actor_of, require_role
from hotline.web.bodies import answers_errors, path_int, read_body
from hotline.web.keys import SESSIONS, SETTINGS
from hotline.web.responses import json_error, json_model


def _locked_out(error: Exception) -> web.StreamResponse:
    assert isinstance(error, LockedOut)
    response = json_error(429, error.message, error.detail)
    response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


_answers_errors = answers_errors({LockedOut: _locked_out, InvalidInput: 422, NotFound: 404,
                                  Conflict: 409, InvalidCredentials: 401, PeopleError: 400})


def _people(request: web.Request) -> People:
    return request.app[PEOPLE]


# -- signing in --------------------------------------------------------------------------

@_answers_errors
async def login(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, LoginIn)
    signed_in = await _people(request).login(body.username, body.password,
                                             token_name=body.token_name,
                                             remote=request.remote)
    return json_model(LoginOut(token=signed_in.issued.token, token_id=signed_in.issued.row.id,
                               expires_at=signed_in.issued.row.expires_at,
                               user=UserOut.model_validate(signed_in.user)))


@_answers_errors
async def logout(request: web.Request) -> web.StreamResponse:
    await _people(request).logout(actor_of(request), request[TOKEN_ID])
    return web.Response(status=204)


@_answers_errors
async def me(request: web.Request) -> web.StreamResponse:
    actor = actor_of(request)
    if actor.user_id is None:
        return json_error(404, "this actor is not a user")
    return json_model(UserOut.model_validate(await _people(request).get_user(actor.user_id)))


# -- users (admins) ----------------------------------------------------------------------

@_answers_errors
async def list_users(request: web.Request) -> web.StreamResponse:
    require_role(request, Role.ADMIN)
    users = await _people(request).list_users()
    return json_model(UserList(items=[UserOut.model_validate(user) for user in users]))


@_answers_errors
async def create_user(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, Role.ADMIN)
    body = await read_body(request, UserCreate)
    user = await _people(request).create_user(
        actor, username=body.username, role=body.role, password=body.password,
        display_name=body.display_name, language=body.language)
    return json_model(UserOut.model_validate(user), status=201)


@_answers_errors
async def update_user(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, Role.ADMIN)
    body = await read_body(request, UserPatch)
    user = await _people(request).update_user(
        actor, path_int(request, "user_id"), display_name=body.display_name, role=body.role,
        active=body.active, password=body.password, language=body.language)
    return json_model(UserOut.model_validate(user))


@_answers_errors
async def issue_token(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, Role.ADMIN)
    body = await read_body(request, TokenCreate)
    issued = await _people(request).issue_token(actor, path_int(request, "user_id"), name=body.name,
                                                expires_in_days=body.expires_in_days)
    out = TokenOut.model_validate(issued.row)
    return json_model(IssuedTokenOut(**out.model_dump(), token=issued.token), status=201)


@_answers_errors
async def list_tokens(request: web.Request) -> web.StreamResponse:
    require_role(request, Role.ADMIN)
    rows = await _people(request).list_tokens(path_int(request, "user_id"))
    return json_model(TokenList(items=[TokenOut.model_validate(row) for row in rows]))


@_answers_errors
async def revoke_token(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, Role.ADMIN)
    row = await _people(request).revoke_token(actor, path_int(request, "user_id"),
                                              path_int(request, "token_id"))
    return json_model(TokenOut.model_validate(row))


def add_routes(app: web.Application, people: People | None = None) -> None:
    """Install the People service (`app[PEOPLE]`, used by `bearer_auth`) and its routes.

    Needs `app[SESSIONS]` and `app[SETTINGS]` unless `people` is given.
    """
    if people is None:
        settings = app[SETTINGS]
        people = People(sessions=app[SESSIONS], clock=Clock.from_settings(settings.clock),
                        policy=Policy(login_token_ttl=timedelta(
                            hours=settings.web.login_token_hours)))
    app[PEOPLE] = people
    app.router.add_post("/api/auth/login", login)
    app.router.add_post("/api/auth/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/users", list_users)
    app.router.add_post("/api/users", create_user)
    app.router.add_patch(r"/api/users/{user_id:\d{1,9}}", update_user)
    app.router.add_get(r"/api/users/{user_id:\d{1,9}}/tokens", list_tokens)
    app.router.add_post(r"/api/users/{user_id:\d{1,9}}/tokens", issue_token)
    app.router.add_delete(r"/api/users/{user_id:\d{1,9}}/tokens/{token_id:\d{1,9}}", revoke_token)
