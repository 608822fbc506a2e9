"""Where prompts live: WAV files under Asterisk's sounds directory, kept originals under the
var directory, and their rows in the database (``Prompt``, ``PromptVersion``)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from hotline.asterisk.sandbox import chroot_path
from hotline.config import Settings
from hotline.db.models import Prompt, PromptVersion, Site

#: Where the sandbox's Asterisk keeps its sounds, inside the chroot.
SANDBOX_SOUNDS = "/usr/share/asterisk/sounds"
#: Characters a site code may have to become part of a path and a sound name.
SAFE_SITE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(?:_[A-Za-z0-9]{2,8})?$")


def sound_name(site_code: str, name: str, version: int) -> str:
    """The Asterisk sound name of a prompt version (``Playback(<this>)``)."""
    return f"hotline/sites/{site_code}/{name}-v{version}"


@dataclass(frozen=True)
class PromptFiles:
    """The prompt files of this node.

    ``sounds_dir`` is Asterisk's sounds directory as this process reaches it; None means the
    sandbox's, whose language directories are resolved inside the chroot (``sounds/en`` is an
    absolute symlink there).
    """

    var_dir: Path
    sounds_dir: Path | None = None
    chroot_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PromptFiles:
        return cls(var_dir=settings.var_dir, sounds_dir=settings.prompts.sounds_dir,
                   chroot_dir=settings.asterisk.chroot_dir)

    def language_dir(self, language: str) -> Path:
        if not LANGUAGE.match(language):
            raise ValueError(f"not a language code: {language!r}")
        if self.sounds_dir is not None:
            return Path(self.sounds_dir) / language
        if self.chroot_dir is None:
            raise ValueError("neither a sounds directory nor a sandbox chroot is configured")
        root = Path(self.chroot_dir).expanduser().absolute()
        return chroot_path(root, f"{SANDBOX_SOUNDS}/{language}")

    def sound_path(self, language: str, sound: str) -> Path:
        return self.language_dir(language) / f"{sound}.wav"

    def find(self, sound: str, languages: Iterable[str]) -> Path | None:
        """The file of `sound` in the first language directory that has it."""
        for language in dict.fromkeys(languages):
            with contextlib.suppress(ValueError):
                path = self.sound_path(language, sound)
                if path.is_file():
                    return path
        return None

    @property
    def incoming_dir(self) -> Path:
        return self.var_dir / "prompts" / "incoming"

    @property
    def originals_dir(self) -> Path:
        return self.var_dir / "prompts" / "originals"

    def original_path(self, sha256: str, extension: str) -> Path:
        return self.originals_dir / f"{sha256}.{extension}"

    def incoming_file(self) -> Path:
        """A fresh path for an upload being received (removed by whoever asked for it)."""
        self.incoming_dir.mkdir(parents=True, exist_ok=True)
        return self.incoming_dir / f"{uuid.uuid4().hex}.part"

    @contextlib.contextmanager
    def staged(self, language: str, site_code: str) -> Iterator[Path]:
        """A temporary file beside where the site's prompts go (same filesystem, so placing it
        is atomic); removed on the way out unless it was placed."""
        directory = self.language_dir(language) / "hotline" / "sites" / site_code
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f".staged-{uuid.uuid4().hex}.wav"
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    @staticmethod
    def place(staged: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)

    def keep_original(self, source: Path, sha256: str, extension: str) -> Path | None:
        """Keep an uploaded original (content-addressed); the path if this call created it,
        None if the same file was kept already."""
        target = self.original_path(sha256, extension)
        if target.exists():
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target


# -- database ------------------------------------------------------------------------------


async def site_by_code(session: AsyncSession, code: str) -> Site | None:
    return await session.scalar(select(Site).where(Site.code == code))


async def prompts_of_site(session: AsyncSession, site_id: int) -> list[Prompt]:
    rows = await session.scalars(
        select(Prompt).options(selectinload(Prompt.versions))
        .where(Prompt.site_id == site_id).order_by(Prompt.name))
    return list(rows.all())


async def prompt_by_name(session: AsyncSession, site_id: int, name: str) -> Prompt | None:
    return await session.scalar(
        select(Prompt).options(selectinload(Prompt.versions))
        .where(Prompt.site_id == site_id, Prompt.name == name))


async def next_version(session: AsyncSession, prompt_id: int) -> int:
    highest = await session.scalar(
        select(func.max(PromptVersion.version)).where(PromptVersion.prompt_id == prompt_id))
    return (highest or 0) + 1


async def latest_versions(session: AsyncSession, site_id: int) -> list[tuple[str, int, str]]:
    """(name, version, sound) of every prompt's newest version."""
    newest = (
        select(PromptVersion.prompt_id, func.max(PromptVersion.version).label("version"))
        .group_by(PromptVersion.prompt_id).subquery()
    )
    rows = await session.execute(
        select(Prompt.name, PromptVersion.version, PromptVersion.sound)
        .join(PromptVersion, PromptVersion.prompt_id == Prompt.id)
        .join(newest, (newest.c.prompt_id == PromptVersion.prompt_id)
              & (newest.c.version == PromptVersion.version))
        .where(Prompt.site_id == site_id))
    return [(name, version, sound) for name, version, sound in rows.all()]


async def versions_named(session: AsyncSession, site_id: int,
                         names: Iterable[str]) -> list[tuple[str, int, str]]:
    """(name, version, sound) of every version of the prompts called `names`."""
    wanted = sorted(set(names))
    if not wanted:
        return []
    rows = await session.execute(
        select(Prompt.name, PromptVersion.version, PromptVersion.sound)
        .join(PromptVersion, PromptVersion.prompt_id == Prompt.id)
        .where(Prompt.site_id == site_id, Prompt.name.in_(wanted)))
    return [(name, version, sound) for name, version, sound in rows.all()]
