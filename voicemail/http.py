"""HTTP handlers: voicemail messages and their audio (every listen audited), the callback
worklist (urgent first, then messages no keyword scan has cleared, then oldest), assigning
a callback and recording its outcome by hand, and the crisis keyword list.

Everyone who works the line reads, listens and works callbacks; only admins edit the
keyword list.
"""

from __future__ import annotations

from aiohttp import web

from hotline.web.auth import require_role
from hotline.web.bodies import answers_errors, path_int, read_body, read_query
from hotline.web.keys import COMPONENTS
from hotline.web.responses import json_error, json_model
from voicemail.schemas import (
    AssignIn,
    AudioQuery,
    CallbackList,
    CallbackOut,
    CrisisKeywordList,
    CrisisKeywordsIn,
    OutcomeIn,
    VoicemailList,
    VoicemailOut,
    VoicemailQuery,
    WorklistQuery,
)
from voicemail.services import Invalid, NotFound, Voicemail

READERS = ("admin", "supervisor", "duty_officer", "counsellor")
EDITORS = ("admin",)


def _invalid(error: Exception) -> web.StreamResponse:
    problems = getattr(error, "problems", None)
    return json_error(422, str(error), problems or None)


_errors = answers_errors({NotFound: 404, Invalid: _invalid})


def _voicemail(request: web.Request) -> Voicemail:
    return request.app[COMPONENTS].voicemail


# -- messages -------------------------------------------------------------------------------

@_errors
async def list_messages(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    query = read_query(request, VoicemailQuery)
    items = await _voicemail(request).messages(site=query.site, urgent=query.urgent,
                                               limit=query.limit)
    return json_model(VoicemailList(items=[VoicemailOut.model_validate(m) for m in items]))


@_errors
async def get_message(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    message = await _voicemail(request).message(path_int(request, "message_id"))
    return json_model(VoicemailOut.model_validate(message))


@_errors
async def get_audio(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *READERS)
    query = read_query(request, AudioQuery)
    audio = await _voicemail(request).audio(actor, path_int(request, "message_id"),
                                            original=query.original)
    return web.FileResponse(audio.path, headers={
        "Content-Type": audio.content_type,
        "Content-Disposition": f'attachment; filename="{audio.filename}"',
        "Cache-Control": "no-store",
    })


# -- the callback worklist ----------------------------------------------------------------

@_errors
async def worklist(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    query = read_query(request, WorklistQuery)
    items = await _voicemail(request).worklist(site=query.site,
                                               include_closed=query.include_closed,
                                               limit=query.limit)
    return json_model(CallbackList(items=[CallbackOut.model_validate(t) for t in items]))


@_errors
async def assign(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *READERS)
    body = await read_body(request, AssignIn)
    task = await _voicemail(request).assign(actor, path_int(request, "task_id"),
                                            body.counsellor_id)
    return json_model(CallbackOut.model_validate(task))


@_errors
async def record_outcome(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *READERS)
    body = await read_body(request, OutcomeIn)
    task = await _voicemail(request).record_outcome(actor, path_int(request, "task_id"),
                                                    body.outcome.value, body.note)
    return json_model(CallbackOut.model_validate(task))


# -- crisis keywords ------------------------------------------------------------------------

@_errors
async def get_keywords(request: web.Request) -> web.StreamResponse:
    require_role(request, *READERS)
    items = await _voicemail(request).keywords()
    return json_model(CrisisKeywordList.model_validate({"items": items}))


@_errors
async def put_keywords(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, *EDITORS)
    body = await read_body(request, CrisisKeywordsIn)
    items = await _voicemail(request).replace_keywords(
        actor, [entry.model_dump(mode="json") for entry in body.items])
    return json_model(CrisisKeywordList.model_validate({"items": items}))


def add_routes(app: web.Application) -> None:
    message = r"/api/voicemail/messages/{message_id:\d{1,9}}"
    app.router.add_get("/api/voicemail/messages", list_messages)
    app.router.add_get(message, get_message)
    app.router.add_get(message + "/audio", get_audio)
    task = r"/api/callbacks/{task_id:\d{1,9}}"
    app.router.add_get("/api/callbacks", worklist)
    app.router.add_post(task + "/assign", assign)
    app.router.add_post(task + "/outcome", record_outcome)
    app.router.add_get("/api/crisis-keywords", get_keywords)
    app.router.add_put("/api/crisis-keywords", put_keywords)
