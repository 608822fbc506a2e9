"""Typed application state keys shared by the HTTP handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

if TYPE_CHECKING:
    from hotline.app import Components
    from hotline.config import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
SESSIONS: web.AppKey[async_sessionmaker[AsyncSession]] = web.AppKey("sessions")
COMPONENTS: web.AppKey[Components] = web.AppKey("components")
