"""The prompt library's use cases: upload a recording, generate one from text, list, download;
and what the rules publisher asks (the newest versions, the sounds of pinned versions).

Each new recording is a new version. Its file is converted first (off the event loop), then
placed under the sounds directory in the same database transaction that records the version
and its audit entry: if the transaction fails the file is taken away again, so a version
row never lacks its file and a failed upload leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.audit import Actor, record_audit
from hotline.clock import Clock
from hotline.db.models import Prompt, PromptVersion, Site
from hotline.prompts import audio, storage
from hotline.prompts.audio import AudioRejected, Converted
from hotline.prompts.storage import SAFE_SITE_CODE, PromptFiles, sound_name

NAME = re.compile(r"^[a-z0-9-]{1,64}$")
#: Tries of the version-numbering transaction when a concurrent upload took the number.
_ATTEMPTS = 4


class PromptLibraryError(Exception):
    status = 400

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotFound(PromptLibraryError):
    status = 404


class InvalidInput(PromptLibraryError):
    status = 422


class Rejected(PromptLibraryError):
    """The audio (or text) cannot become a prompt."""

    status = 422


class Unavailable(PromptLibraryError):
    """A tool the conversion needs is missing here (ffmpeg, espeak-ng)."""

    status = 503


@dataclass(frozen=True)
class Upload:
    """An uploaded file, received into `path` (the caller removes it afterwards)."""

    path: Path
    sha256: str
    size: int
    filename: str | None = None


@dataclass(frozen=True)
class VersionView:
    """A version as the API shows it."""

    site: str
    name: str
    row: PromptVersion

    @property
    def audio_url(self) -> str:
        return (f"/api/sites/{self.site}/prompts/{self.name}/versions/{self.row.version}"
                "/audio")


@dataclass(frozen=True)
class PromptView:
    site: str
    prompt: Prompt

    @property
    def versions(self) -> list[VersionView]:
        return [VersionView(self.site, self.prompt.name, row) for row in self.prompt.versions]


@dataclass(frozen=True)
class _Recording:
    converted: Converted
    language: str
    source: str
    sha256: str
    text: str | None = None
    original: Upload | None = None
    extension: str | None = None


@dataclass
class PromptLibrary:
    sessions: async_sessionmaker[AsyncSession]
    files: PromptFiles
    clock: Clock
    max_seconds: float = 600.0
    max_upload_bytes: int = 200 * 1024 * 1024
    # Conversions at once: each holds a decoded recording in memory.
    concurrency: int = 2
    _converting: asyncio.Semaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._converting = asyncio.Semaphore(self.concurrency)

    # -- reading ---------------------------------------------------------------------------

    async def prompts(self, site_code: str) -> list[PromptView]:
        async with self.sessions() as session:
            site = await self._site(session, site_code)
            return [PromptView(site.code, p) for p in await storage.prompts_of_site(session,
                                                                                  site.id)]

    async def prompt(self, site_code: str, name: str) -> PromptView:
        check_name(name)
        async with self.sessions() as session:
            site = await self._site(session, site_code)
            prompt = await storage.prompt_by_name(session, site.id, name)
        if prompt is None:
            raise NotFound("no such prompt", {"site": site_code, "name": name})
        return PromptView(site.code, prompt)

    async def audio_file(self, actor: Actor, site_code: str, name: str,
                         version: int) -> tuple[VersionView, Path]:
        """The converted WAV of a version, for download; the access is audited."""
        check_name(name)
        async with self.sessions() as session:
            site = await self._site(session, site_code)
            prompt = await storage.prompt_by_name(session, site.id, name)
            row = next((v for v in prompt.versions if v.version == version),
                       None) if prompt else None
            if prompt is None or row is None:
                raise NotFound("no such prompt version",
                               {"site": site_code, "name": name, "version": version})
            path = self.files.find(row.sound, [site.language, "zh", "en"])
            if path is None:
                raise NotFound("the audio file of this version is missing",
                               {"sound": row.sound})
            record_audit(session, actor=actor, at=self.clock.now(), action="prompt.download",
                         target=_target(site.code, name),
                         after={"version": version, "sound": row.sound})
            await session.commit()
            return VersionView(site.code, name, row), path

    # -- new versions ----------------------------------------------------------------------

    async def upload(self, actor: Actor, site_code: str, name: str, upload: Upload, *,
                     language: str | None = None,
                     description: str | None = None) -> VersionView:
        """A new version from an uploaded WAV or MP3."""
        check_name(name)
        site = await self._site_now(site_code)
        language = check_language(language or site.language)
        with self.files.staged(language, site.code) as staged:
            async with self._converting:
                converted = await _off_loop(audio.convert_upload, upload.path, staged,
                                            max_seconds=self.max_seconds)
            extension = converted.details.get("format", "bin")
            recording = _Recording(converted=converted, language=language, source="upload",
                                   sha256=upload.sha256, original=upload, extension=extension)
            return await self._add_version(actor, site.code, name, recording,
                                           description=description, action="prompt.upload")

    async def generate(self, actor: Actor, site_code: str, name: str, text: str, *,
                       language: str | None = None,
                       description: str | None = None) -> VersionView:
        """A new version spoken by espeak-ng."""
        check_name(name)
        site = await self._site_now(site_code)
        language = check_language(language or site.language)
        with self.files.staged(language, site.code) as staged:
            async with self._converting:
                converted = await _off_loop(audio.synthesize, text, language, staged,
                                            max_seconds=self.max_seconds)
            digest = await asyncio.to_thread(_sha256_of, staged)
            recording = _Recording(converted=converted, language=language, source="tts",
                                   sha256=digest, text=text.strip())
            return await self._add_version(actor, site.code, name, recording,
                                           description=description, action="prompt.generate")

    async def _add_version(self, actor: Actor, site_code: str, name: str,
                           recording: _Recording, *, description: str | None,
                           action: str) -> VersionView:
        for attempt in range(_ATTEMPTS):
            try:
                return await self._record(actor, site_code, name, recording,
                                          description=description, action=action)
            except IntegrityError:
                # A concurrent upload took the prompt's name or this version number.
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _record(self, actor: Actor, site_code: str, name: str, recording: _Recording, *,
                      description: str | None, action: str) -> VersionView:
        staged = recording.converted.path
        placed: Path | None = None
        kept: Path | None = None
        async with self.sessions() as session:
            try:
                site = await self._site(session, site_code)
                prompt = await storage.prompt_by_name(session, site.id, name)
                before = None
                if prompt is None:
                    prompt = Prompt(site_id=site.id, name=name, description=description or "")
                    session.add(prompt)
                    await session.flush()
                elif description is not None and description != prompt.description:
                    before = {"description": prompt.description}
                    prompt.description = description
                version = await storage.next_version(session, prompt.id)
                row = PromptVersion(
                    prompt_id=prompt.id, version=version, source=recording.source,
                    text=recording.text,
                    original_filename=recording.original.filename if recording.original else None,
                    sha256=recording.sha256, duration_ms=recording.converted.duration_ms,
                    sound=sound_name(site.code, name, version),
                    created_by=actor.username, created_at=self.clock.now(),
                )
                session.add(row)
                # The version number is ours from here (unique per prompt) until we commit.
                await session.flush()
                target = self.files.sound_path(recording.language, row.sound)
                self.files.place(staged, target)
                placed = target
                if recording.original is not None and recording.extension:
                    kept = await asyncio.to_thread(
                        self.files.keep_original, recording.original.path, recording.sha256,
                        recording.extension)
                after = {
                    "version": version, "sound": row.sound, "source": recording.source,
                    "language": recording.language, "duration_ms": row.duration_ms,
                    "sha256": row.sha256, **recording.converted.details,
                }
                if row.original_filename:
                    after["original_filename"] = row.original_filename
                if recording.text is not None:
                    after["text"] = recording.text
                if before is not None:
                    after["description"] = prompt.description
                record_audit(session, actor=actor, at=row.created_at, action=action,
                             target=_target(site.code, name), before=before, after=after)
                await session.commit()
            except BaseException:
                await session.rollback()
                if placed is not None:
                    # Back to the staging name: a retry places it again, else it is removed.
                    self.files.place(placed, staged)
                if kept is not None:
                    kept.unlink(missing_ok=True)
                raise
            return VersionView(site.code, name, row)

    # -- helpers ---------------------------------------------------------------------------

    async def _site_now(self, site_code: str) -> Site:
        async with self.sessions() as session:
            return await self._site(session, site_code)

    @staticmethod
    async def _site(session: AsyncSession, site_code: str) -> Site:
        site = (await storage.site_by_code(session, site_code)
                if SAFE_SITE_CODE.match(site_code) else None)
        if site is None:
            raise NotFound("no such site", {"site": site_code})
        return site


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise InvalidInput("invalid prompt name",
                           {"name": name, "rule": "1 to 64 lowercase letters, digits or dashes"})
    return name


def check_language(language: str) -> str:
    if not storage.LANGUAGE.match(language):
        raise InvalidInput("invalid language", {"language": language})
    return language


async def _off_loop(function: Any, *args: Any, **kwargs: Any) -> Converted:
    try:
        result: Converted = await asyncio.to_thread(function, *args, **kwargs)
    except AudioRejected as error:
        raise Rejected(error.error, error.detail) from error
    except audio.AudioUnavailable as error:
        raise Unavailable(str(error)) from error
    return result


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _target(site_code: str, name: str) -> str:
    return f"site:{site_code}/prompt:{name}"


# -- for the rules publisher ---------------------------------------------------------------


async def latest_prompt_versions(session: AsyncSession, site_id: int) -> dict[str, tuple[int, str]]:
    """Every prompt of the site by name: (its newest version, that version's sound)."""
    return {name: (version, sound)
            for name, version, sound in await storage.latest_versions(session, site_id)}


async def sounds_for_versions(session: AsyncSession, site_id: int,
                              pinned: Mapping[str, int]) -> dict[str, str]:
    """The sounds of pinned versions (name → version); a pin that names no existing version
    is left out, so the caller can tell it is missing."""
    return {name: sound
            for name, version, sound in await storage.versions_named(session, site_id, pinned)
            if pinned.get(name) == version}
