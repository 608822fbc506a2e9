"""HTTP handlers for /api/sites/{site}/prompts: list, show, upload or generate, download.

POST /api/sites/{site}/prompts/{name} takes one of:
- a raw body with Content-Type audio/wav (audio/x-wav, audio/wave) or audio/mpeg; optional
  query parameters ``language``, ``description`` and ``filename``;
- multipart/form-data with a ``file`` field (and optional ``language``, ``description``);
- application/json ``{"text": "...", "language": "zh"}`` to have espeak-ng speak it.
Uploads are streamed to a file under the var directory, never held in memory whole.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from pydantic import ValidationError

from hotline.clock import Clock
from hotline.prompts.schemas import (
    PromptDetail,
    PromptList,
    PromptSummary,
    PromptVersionOut,
    TextToSpeechIn,
)
from hotline.prompts.services import PromptLibrary, PromptLibraryError, Upload, VersionView
from hotline.prompts.storage import PromptFiles
from hotline.web.auth import actor_of, require_role
from hotline.web.bodies import BadRequest, answers_errors
from hotline.web.keys import SESSIONS, SETTINGS
from hotline.web.responses import json_error, json_model

PROMPTS: web.AppKey[PromptLibrary] = web.AppKey("prompt_library", PromptLibrary)

RAW_AUDIO_TYPES = frozenset({
    "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/mpeg", "audio/mp3",
})
ACCEPTED_TYPES = sorted(RAW_AUDIO_TYPES | {"multipart/form-data", "application/json"})
#: Form fields besides the file, and how long they may be.
_FORM_FIELDS = frozenset({"language", "description"})
_FIELD_MAX_BYTES = 4096
_CHUNK = 1 << 16

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _library_error(error: Exception) -> web.StreamResponse:
    assert isinstance(error, PromptLibraryError)
    return json_error(error.status, error.message, error.detail)


_answers_errors = answers_errors({PromptLibraryError: _library_error})


def version_out(view: VersionView) -> PromptVersionOut:
    row = view.row
    return PromptVersionOut.model_validate({
        "version": row.version, "source": row.source, "sound": row.sound,
        "duration_ms": row.duration_ms, "sha256": row.sha256, "text": row.text,
        "original_filename": row.original_filename, "created_by": row.created_by,
        "created_at": row.created_at, "audio_url": view.audio_url,
    })


@_answers_errors
async def list_prompts(request: web.Request) -> web.StreamResponse:
    actor_of(request)
    site = request.match_info["site"]
    views = await request.app[PROMPTS].prompts(site)
    items = []
    for view in views:
        versions = view.versions
        items.append(PromptSummary(name=view.prompt.name, description=view.prompt.description,
                                   versions=len(versions),
                                   latest=version_out(versions[-1]) if versions else None))
    return json_model(PromptList(site=site, items=items))


@_answers_errors
async def get_prompt(request: web.Request) -> web.StreamResponse:
    actor_of(request)
    view = await request.app[PROMPTS].prompt(request.match_info["site"],
                                             request.match_info["name"])
    return json_model(PromptDetail(site=view.site, name=view.prompt.name,
                                   description=view.prompt.description,
                                   versions=[version_out(v) for v in view.versions]))


@_answers_errors
async def post_prompt(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, "admin")
    library = request.app[PROMPTS]
    site, name = request.match_info["site"], request.match_info["name"]
    content_type = request.content_type.lower()
    if content_type == "application/json":
        body = await _json_body(request)
        view = await library.generate(actor, site, name, body.text, language=body.language,
                                      description=body.description)
        return json_model(version_out(view), status=201)
    if content_type in RAW_AUDIO_TYPES:
        filename = _raw_filename(request)
        upload = await _receive(library, request.content.iter_chunked(_CHUNK), filename)
        fields = {key: request.query[key] for key in _FORM_FIELDS if key in request.query}
    elif content_type == "multipart/form-data":
        upload, fields = await _receive_form(request, library)
    else:
        raise BadRequest(415, "unsupported content type",
                          {"content_type": content_type, "accepted": ACCEPTED_TYPES})
    try:
        view = await library.upload(actor, site, name, upload,
                                    language=fields.get("language") or None,
                                    description=fields.get("description"))
    finally:
        upload.path.unlink(missing_ok=True)
    return json_model(version_out(view), status=201)


@_answers_errors
async def get_audio(request: web.Request) -> web.StreamResponse:
    actor = require_role(request, "admin")
    site, name = request.match_info["site"], request.match_info["name"]
    version = int(request.match_info["version"])
    view, path = await request.app[PROMPTS].audio_file(actor, site, name, version)
    return web.FileResponse(path, headers={
        "Content-Type": "audio/wav",
        "Content-Disposition": f'attachment; filename="{view.site}-{name}-v{version}.wav"',
        "Cache-Control": "no-store",
    })


# -- request bodies ------------------------------------------------------------------------


async def _json_body(request: web.Request) -> TextToSpeechIn:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BadRequest(400, "the body must be a JSON object") from error
    except web.HTTPRequestEntityTooLarge as error:
        raise BadRequest(413, "the body is too large") from error
    try:
        return TextToSpeechIn.model_validate(data)
    except ValidationError as error:
        raise BadRequest(422, "invalid body", error.errors(include_url=False,
                                                            include_context=False)) from error


def _raw_filename(request: web.Request) -> str | None:
    header = request.headers.get("Content-Disposition")
    if header:
        _kind, params = parse_content_disposition(header)
        name = content_disposition_filename(params, "filename")
        if name:
            return _clean_filename(name)
    return _clean_filename(request.query.get("filename"))


def _clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    # aiohttp's own client percent-quotes file names; browsers send them as they are.
    name = unquote(name) if re.search(r"%[0-9A-Fa-f]{2}", name) else name
    name = Path(name.replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable())[:255]
    return name or None


async def _receive(library: PromptLibrary, chunks: AsyncIterator[bytes],
                   filename: str | None) -> Upload:
    """Stream a body to a file under the var directory, hashing it; 413 past the limit."""
    path = library.files.incoming_file()
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > library.max_upload_bytes:
                    raise BadRequest(413, "the file is too large",
                                      {"max_bytes": library.max_upload_bytes})
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Upload(path=path, sha256=digest.hexdigest(), size=size, filename=filename)


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(_CHUNK):
        yield chunk


async def _receive_form(request: web.Request,
                        library: PromptLibrary) -> tuple[Upload, dict[str, str]]:
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError) as error:
        raise BadRequest(400, "malformed multipart body") from error
    upload: Upload | None = None
    fields: dict[str, str] = {}
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                if upload is not None:
                    raise BadRequest(400, "one file per upload")
                upload = await _receive(library, _part_chunks(part),
                                        _clean_filename(part.filename))
            elif part.name in _FORM_FIELDS:
                value = b""
                async for chunk in _part_chunks(part):
                    value += chunk
                    if len(value) > _FIELD_MAX_BYTES:
                        raise BadRequest(400, f"the field {part.name} is too long")
                fields[part.name] = value.decode("utf-8", errors="replace").strip()
            else:
                await part.release()
    except BaseException:
        if upload is not None:
            upload.path.unlink(missing_ok=True)
        raise
    if upload is None:
        raise BadRequest(400, "the form has no file field",
                          {"field": "file", "accepted": sorted(RAW_AUDIO_TYPES)})
    return upload, fields


# -- wiring --------------------------------------------------------------------------------


def add_routes(app: web.Application, library: PromptLibrary | None = None) -> None:
    """Install the prompt library (`app[PROMPTS]`) and its routes.

    Needs `app[SESSIONS]` and `app[SETTINGS]` unless `library` is given.
    """
    if library is None:
        settings = app[SETTINGS]
        library = PromptLibrary(
            sessions=app[SESSIONS], files=PromptFiles.from_settings(settings),
            clock=Clock.from_settings(settings.clock),
            max_seconds=settings.prompts.max_duration_seconds,
            max_upload_bytes=settings.prompts.max_upload_bytes,
        )
    app[PROMPTS] = library
    app.router.add_get("/api/sites/{site}/prompts", list_prompts)
    app.router.add_get("/api/sites/{site}/prompts/{name}", get_prompt)
    app.router.add_post("/api/sites/{site}/prompts/{name}", post_prompt)
    app.router.add_get(r"/api/sites/{site}/prompts/{name}/versions/{version:\d{1,9}}/audio",
                       get_audio)
