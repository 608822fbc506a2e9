"""API shapes of the prompt library (also the source of the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PROMPT_NAME_PATTERN = r"^[a-z0-9-]{1,64}$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}(?:_[A-Za-z0-9]{2,8})?$"


class PromptVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    source: Literal["upload", "tts"]
    sound: str = Field(description="the Asterisk sound name, e.g. "
                                   "hotline/sites/default/welcome-v3 (Playback plays it)")
    duration_ms: int
    sha256: str = Field(description="of the uploaded file, or of the generated WAV (tts)")
    text: str | None = Field(default=None, description="the text spoken (tts)")
    original_filename: str | None = None
    created_by: str
    created_at: datetime
    audio_url: str = Field(description="download the converted WAV (admins)")


class PromptSummary(BaseModel):
    name: str
    description: str
    versions: int
    latest: PromptVersionOut | None


class PromptList(BaseModel):
    site: str
    items: list[PromptSummary]


class PromptDetail(BaseModel):
    site: str
    name: str
    description: str
    versions: list[PromptVersionOut]


class TextToSpeechIn(BaseModel):
    """POST body (application/json) to make a version from text with espeak-ng."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000,
                      description='what to say; "……" is a pause of 1.5 s')
    language: str | None = Field(default=None, pattern=LANGUAGE_PATTERN,
                                 description="zh (Mandarin) or en; the site's language if "
                                             "not given")
    description: str | None = Field(default=None, max_length=2000)
