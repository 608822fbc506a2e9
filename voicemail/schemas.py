"""Request and response bodies of the voicemail API: messages, the callback worklist, and
the crisis keyword list."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hotline.db.models import CallbackState, MessageAudio, Transcription
from routing.callbacks import Outcome
from routing.keywords import Category


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- queries --------------------------------------------------------------------------------

class VoicemailQuery(_In):
    site: str | None = Field(default=None, max_length=32)
    urgent: bool | None = Field(default=None, description="only urgent (true) or only "
                                                          "non-urgent (false) messages")
    limit: int = Field(default=100, ge=1, le=1000)


class AudioQuery(_In):
    original: bool = Field(default=False, description="the original recording rather than "
                                                      "the compressed web copy")


class WorklistQuery(_In):
    site: str | None = Field(default=None, max_length=32)
    include_closed: bool = Field(default=False, description="also done and closed callbacks")
    limit: int = Field(default=200, ge=1, le=1000)


# -- bodies -------------------------------------------------------------------------------

Phrase = Annotated[str, StringConstraints(max_length=64)]


class AssignIn(_In):
    counsellor_id: int | None = Field(description="the counsellor who calls back; null: "
                                                  "nobody in particular")


class OutcomeIn(_In):
    outcome: Outcome
    note: str = Field(default="", max_length=2000)


class CrisisKeywordIn(_In):
    term: Phrase
    category: Category
    synonyms: list[Phrase] = Field(default_factory=list, max_length=100)
    exclusions: list[Phrase] = Field(default_factory=list, max_length=100,
                                     description="longer phrases containing the term or a "
                                                 "synonym that mean something else")


class CrisisKeywordsIn(_In):
    # An empty list is refused: with no entries the built-in defaults apply again, so
    # saving one would not mean "no keywords".
    items: list[CrisisKeywordIn] = Field(min_length=1, max_length=1000)


# -- answers --------------------------------------------------------------------------------

class CallbackAttemptOut(BaseModel):
    number: int
    node: str
    claimed_at: datetime
    counsellor_id: int | None
    dialed_number: str | None
    outcome: str | None = Field(description="reached, no_answer, busy, invalid_number, "
                                            "not_safe, failed, counsellor_unavailable, lost")
    detail: str
    ended_at: datetime | None


class CallbackOut(BaseModel):
    id: int
    site: str
    message_id: int | None
    source: str
    queue: str | None
    number: str | None
    urgent: bool
    untranscribed: bool
    requested_at: datetime
    due_at: datetime
    deadline_at: datetime | None
    next_attempt_at: datetime | None
    state: CallbackState
    outcome: str | None
    attempts_made: int
    assigned_counsellor_id: int | None
    note: str
    closed_at: datetime | None
    # Every dial so far (in a message's detail; not in lists).
    attempts: list[CallbackAttemptOut] | None = None


class CallbackList(BaseModel):
    items: list[CallbackOut]


class KeywordHitOut(BaseModel):
    term: str
    canonical: str
    category: str
    snippet: str


class VoicemailOut(BaseModel):
    id: int
    site: str
    caller_number: str | None
    call_id: str | None
    spool_path: str = Field(description="the recording's place in Asterisk's spool "
                                        "(<site>/<name>), its key")
    recorded_at: datetime
    ingested_at: datetime
    duration_seconds: float | None
    audio: MessageAudio
    audio_reason: str
    transcription: Transcription
    transcript: str | None
    transcription_reason: str
    transcription_model: str | None
    urgent: bool
    keyword_hits: list[KeywordHitOut]
    processed_at: datetime | None
    callback: CallbackOut | None


class VoicemailList(BaseModel):
    items: list[VoicemailOut]


class CrisisKeywordOut(BaseModel):
    term: str
    category: str
    synonyms: list[str]
    exclusions: list[str]


class CrisisKeywordList(BaseModel):
    items: list[CrisisKeywordOut]
