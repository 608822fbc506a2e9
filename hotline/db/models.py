"""SQLAlchemy 2 typed models. Times are stored as aware UTC datetimes."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# The call id lives in routing/ids.py (the classic AGI fallback computes it without
# SQLAlchemy); re-exported here for the code that always found it in this module.
from routing.ids import CALL_ID_NAMESPACE as CALL_ID_NAMESPACE
from routing.ids import call_id_for as call_id_for

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (naive storage) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, dict[str, Any]: JSON}


class Tier(enum.StrEnum):
    HIGH_RISK = "high_risk"
    CONSULTATION = "consultation"
    SUPERVISOR = "supervisor"


class Seat(enum.StrEnum):
    ON_SITE = "on_site"
    CLOUD = "cloud"
    MOBILE = "mobile"


class QueueKind(enum.StrEnum):
    CRISIS = "crisis"
    PSYCH = "psych"
    LEGAL = "legal"
    DUTY = "duty"


def _enum(kind: type[enum.StrEnum]) -> Enum:
    # Stored as plain strings: adding a value needs no database enum migration.
    return Enum(kind, native_enum=False, length=32, values_callable=lambda k: [m.value for m in k])


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    language: Mapped[str] = mapped_column(String(16), default="zh")
    # After a crisis call the counsellor is paused this long for a debrief (0: no pause);
    # they can end it early.
    debrief_seconds: Mapped[int] = mapped_column(Integer, default=300)
    # At most this many crisis calls per counsellor per shift (None: no cap).
    crisis_cap_per_shift: Mapped[int | None] = mapped_column(Integer, default=None)
    # A caller who hangs up within this many seconds of joining a queue is a short
    # abandon: not counted as offered in the answer rate.
    short_abandon_seconds: Mapped[int] = mapped_column(Integer, default=5)
    # Another site's line dialled through the carrier before the on-call mobiles.
    backup_number: Mapped[str | None] = mapped_column(String(32), default=None)
    # The line health watchdog: open line with nobody on duty for this long raises an alert.
    unstaffed_alert_seconds: Mapped[int] = mapped_column(Integer, default=60)
    # Callbacks: the caller ID shown to the person called back (a neutral number that does
    # not name the service; None: the carrier's default), the reply deadline in hours after
    # the message (None: the end of the first service day after it), retries.
    callback_caller_id: Mapped[str | None] = mapped_column(String(32), default=None)
    callback_reply_hours: Mapped[int | None] = mapped_column(Integer, default=None)
    callback_max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    callback_retry_minutes: Mapped[int] = mapped_column(Integer, default=30)
    # Crisis intervention starts within this many minutes of the first crisis signal (None:
    # the deployment's crisis.crisis_deadline_minutes, 30 by the practices followed).
    crisis_deadline_minutes: Mapped[int | None] = mapped_column(Integer, default=None)

    numbers: Mapped[list[SiteNumber]] = relationship(back_populates="site",
                                                     cascade="all, delete-orphan")
    oncall_numbers: Mapped[list[OnCallNumber]] = relationship(
        back_populates="site", cascade="all, delete-orphan", order_by="OnCallNumber.position"
    )
    queues: Mapped[list[Queue]] = relationship(back_populates="site", cascade="all, delete-orphan")
    counsellors: Mapped[list[Counsellor]] = relationship(back_populates="site")


class SiteNumber(Base):
    """A dialled number (DID) that reaches a site's hotline; 12355 for the default site."""

    __tablename__ = "site_numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(32), unique=True)

    site: Mapped[Site] = relationship(back_populates="numbers")


class OnCallNumber(Base):
    """A phone dialled through the carrier when no counsellor can take a call."""

    __tablename__ = "oncall_numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    number: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(200), default="")

    site: Mapped[Site] = relationship(back_populates="oncall_numbers")


class Queue(Base):
    __tablename__ = "queues"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    # The Asterisk queue name: unique on one Asterisk.
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[QueueKind] = mapped_column(_enum(QueueKind))
    label: Mapped[str] = mapped_column(String(200), default="")
    wait_timeout_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    # Seconds after a call before the counsellor is offered the next one from this queue.
    wrapup_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    # Crisis queue: specialists alone for this long, then every counsellor.
    widen_after_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    # The watchdog alerts when a caller has waited longer than this.
    wait_alert_seconds: Mapped[int | None] = mapped_column(Integer, default=None)

    site: Mapped[Site] = relationship(back_populates="queues")


class Counsellor(Base):
    __tablename__ = "counsellors"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[Tier] = mapped_column(_enum(Tier))
    seat: Mapped[Seat] = mapped_column(_enum(Seat))
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The SIP endpoint, auth and AOR share this name.
    sip_username: Mapped[str] = mapped_column(String(64), unique=True)
    # Asterisk needs the digest secret itself to render pjsip.conf; it never leaves the backend
    # except into that file (mode 0600) and once to the counsellor.
    sip_secret: Mapped[str] = mapped_column(String(128))
    mobile_number: Mapped[str | None] = mapped_column(String(32), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The short number colleagues dial to reach this counsellor (transfers).
    extension: Mapped[str | None] = mapped_column(String(16), unique=True, default=None)
    # The person's sign-in: a counsellor may log in, out and pause only themselves.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                unique=True, default=None)

    site: Mapped[Site] = relationship(back_populates="counsellors")
    shifts: Mapped[list[Shift]] = relationship(back_populates="counsellor",
                                               cascade="all, delete-orphan")
    shift_templates: Mapped[list[ShiftTemplate]] = relationship(
        back_populates="counsellor", cascade="all, delete-orphan")


class ShiftTemplate(Base):
    """A weekly shift: each `weekday` from `start` (site time) for `minutes`, midnight or not."""

    __tablename__ = "shift_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    counsellor_id: Mapped[int] = mapped_column(ForeignKey("counsellors.id", ondelete="CASCADE"),
                                               index=True)
    weekday: Mapped[int] = mapped_column(Integer)  # 0 Monday … 6 Sunday
    start: Mapped[str] = mapped_column(String(5))  # "HH:MM"
    minutes: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[date | None] = mapped_column(Date, default=None)
    valid_until: Mapped[date | None] = mapped_column(Date, default=None)

    counsellor: Mapped[Counsellor] = relationship(back_populates="shift_templates")


class ShiftKind(enum.StrEnum):
    WORK = "work"  # on duty in this window (an extra shift, a swap)
    OFF = "off"  # not on duty in this window, whatever the weekly template says


class Presence(enum.StrEnum):
    SCHEDULE = "schedule"  # on duty exactly when a shift says so
    LOGGED_IN = "logged_in"  # on duty now, shift or not, until logged out
    LOGGED_OUT = "logged_out"  # off duty now, until the end of the current shift


class PauseReason(enum.StrEnum):
    BREAK = "break"
    DEBRIEF = "debrief"
    ADMIN = "admin"


class CounsellorPresence(Base):
    """What a counsellor said about their own availability (log in / out, pause), kept
    across restarts; the schedule and the softphone's registration do the rest."""

    __tablename__ = "counsellor_presence"

    counsellor_id: Mapped[int] = mapped_column(
        ForeignKey("counsellors.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    presence: Mapped[Presence] = mapped_column(_enum(Presence), default=Presence.SCHEDULE)
    presence_since: Mapped[datetime | None] = mapped_column(default=None)
    # A manual log-out or log-in falls back to the schedule at this instant.
    presence_until: Mapped[datetime | None] = mapped_column(default=None)
    pause_reason: Mapped[PauseReason | None] = mapped_column(_enum(PauseReason), default=None)
    paused_at: Mapped[datetime | None] = mapped_column(default=None)
    # A debrief pause ends by itself; other pauses last until unpaused.
    pause_until: Mapped[datetime | None] = mapped_column(default=None)


class TransferTarget(Base):
    """An outside line a counsellor may transfer a caller to (a lawyer, the 12345 line)."""

    __tablename__ = "transfer_targets"
    __table_args__ = (UniqueConstraint("site_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    # What the counsellor dials after the transfer feature code.
    code: Mapped[str] = mapped_column(String(8))
    label: Mapped[str] = mapped_column(String(200))
    number: Mapped[str] = mapped_column(String(32))


class AlertState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Alert(Base):
    """Something a person must look at: the line unstaffed, a long wait, the trunk down, a
    crisis. One open alert per `key` (the watchdog updates it instead of repeating it)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_state_key", "state", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    site_code: Mapped[str | None] = mapped_column(String(32), default=None)
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[AlertState] = mapped_column(_enum(AlertState), default=AlertState.OPEN)
    raised_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    # A crisis alert belongs to an incident; the duty chain rings phones for it.
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), default=None, index=True)


class Shift(Base):
    """A dated override of the weekly templates: an extra stretch of duty (`work`) or time
    off (`off`) that cancels whatever the templates say in that window."""

    __tablename__ = "shifts"
    __table_args__ = (Index("ix_shifts_window", "starts_at", "ends_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    counsellor_id: Mapped[int] = mapped_column(ForeignKey("counsellors.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    kind: Mapped[ShiftKind] = mapped_column(_enum(ShiftKind), default=ShiftKind.WORK)
    note: Mapped[str] = mapped_column(Text, default="")

    counsellor: Mapped[Counsellor] = relationship(back_populates="shifts")


class Call(Base):
    """One caller's call, from the IVR to the hang-up, across every channel of its linkedid."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("node", "linkedid", name="uq_calls_node_linkedid"),
        Index("ix_calls_started_at", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    linkedid: Mapped[str] = mapped_column(String(64))
    site_code: Mapped[str | None] = mapped_column(String(32), default=None)
    dialed_number: Mapped[str | None] = mapped_column(String(64), default=None)
    caller_number: Mapped[str | None] = mapped_column(Text, default=None)
    caller_name: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime]
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    route: Mapped[str | None] = mapped_column(String(32), default=None)
    digits: Mapped[str | None] = mapped_column(String(64), default=None)
    queue: Mapped[str | None] = mapped_column(String(64), default=None)
    priority: Mapped[int | None] = mapped_column(Integer, default=None)
    wait_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    answered_by: Mapped[str | None] = mapped_column(String(200), default=None)
    answered_by_counsellor_id: Mapped[int | None] = mapped_column(
        ForeignKey("counsellors.id", ondelete="SET NULL"), default=None
    )
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    caller_kind: Mapped[str | None] = mapped_column(String(16), default=None)
    rules_version: Mapped[int | None] = mapped_column(Integer, default=None)
    survey_score: Mapped[int | None] = mapped_column(Integer, default=None)

    events: Mapped[list[CallEvent]] = relationship(
        back_populates="call", cascade="all, delete-orphan", order_by="CallEvent.id"
    )


class CallEvent(Base):
    """One step of a call's journey (IVR digit, queue join, ring, connect, hang-up...)."""

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    call: Mapped[Call] = relationship(back_populates="events")


class AuditEntry(Base):
    """Who did what, when, with the before/after of every sensitive change."""

    __tablename__ = "audit_log"
    # Sign-in lock-out counts recent failures per user; the log is read by target and time.
    __table_args__ = (Index("ix_audit_log_action_target_at", "action", "target", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    actor_user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class Role(enum.StrEnum):
    """What a person using the admin API may do (DESIGN §2 Words)."""

    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    COUNSELLOR = "counsellor"
    DUTY_OFFICER = "duty_officer"


class User(Base):
    """A person who signs in to the admin web or API. Passwords are argon2 hashes."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[Role] = mapped_column(_enum(Role))
    password_hash: Mapped[str] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(16), default="zh")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user",
                                                  cascade="all, delete-orphan")


class ApiToken(Base):
    """A per-user bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(back_populates="tokens")


class RuleStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    SUPERSEDED = "superseded"


class RuleSetVersion(Base):
    """One version of a site's routing rules (menus, hours, holidays, off-hours mode).

    Exactly one version per site is published at a time; drafts are edited, then published;
    a rollback publishes a copy of an older version. `prompt_versions` pins the prompt
    recordings the version was published with.
    """

    __tablename__ = "rule_sets"
    __table_args__ = (UniqueConstraint("site_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[RuleStatus] = mapped_column(_enum(RuleStatus))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    prompt_versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]
    published_by: Mapped[str | None] = mapped_column(String(200), default=None)
    published_at: Mapped[datetime | None] = mapped_column(default=None)

    site: Mapped[Site] = relationship()


class Prompt(Base):
    """A site's named recording that rules refer to (e.g. `welcome`, `menu-main`)."""

    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")

    versions: Mapped[list[PromptVersion]] = relationship(
        back_populates="prompt", cascade="all, delete-orphan", order_by="PromptVersion.version")


class PromptVersion(Base):
    """One recording of a prompt: uploaded (WAV/MP3) or generated from text (espeak-ng)."""

    __tablename__ = "prompt_versions"
    __table_args__ = (UniqueConstraint("prompt_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))  # upload | tts
    text: Mapped[str | None] = mapped_column(Text, default=None)
    original_filename: Mapped[str | None] = mapped_column(String(255), default=None)
    sha256: Mapped[str] = mapped_column(String(64))
    duration_ms: Mapped[int] = mapped_column(Integer)
    # The Asterisk sound name (no extension) under the sounds directory.
    sound: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime]

    prompt: Mapped[Prompt] = relationship(back_populates="versions")


class CalendarYear(Base):
    """Official holidays and make-up workdays (调休) of a year, entered by an administrator
    for a year the chinese-calendar package does not know yet (or to correct it)."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    # [{"date": "2027-01-01", "name": "元旦"}, ...]
    holidays: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # ["2027-02-20", ...]: weekend days that are working days
    workdays: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(Text, default="")
    entered_by: Mapped[str] = mapped_column(String(200), default="")
    entered_at: Mapped[datetime]


class FlagKind(enum.StrEnum):
    HIGH_RISK = "high_risk"
    ABUSIVE = "abusive"


class CallerFlag(Base):
    """A mark on a caller number: high-risk callers skip the menu to the crisis tier;
    abusive callers get the site's configured path (never without the crisis option)."""

    __tablename__ = "caller_flags"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), index=True)  # normalised
    kind: Mapped[FlagKind] = mapped_column(_enum(FlagKind))
    reason: Mapped[str] = mapped_column(Text, default="")
    call_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_by: Mapped[str | None] = mapped_column(String(200), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


# -- voicemail and callbacks --------------------------------------------------------------------

class MessageAudio(enum.StrEnum):
    PENDING = "pending"
    OK = "ok"
    EMPTY = "empty"
    SILENT = "silent"
    BROKEN = "broken"


class Transcription(enum.StrEnum):
    PENDING = "pending"
    TRANSCRIBED = "transcribed"
    # No model, the model failed, or the audio could not be read: a person listens to it
    # before any other non-urgent message (no keyword scan has cleared it).
    UNTRANSCRIBED = "untranscribed"


class VoicemailMessage(Base):
    """A message a caller left. Asterisk records it into its spool; the backend ingests each
    spool file exactly once (unique per Asterisk node and spool path: every backend of one
    Asterisk shares its node name) and keeps the original."""

    __tablename__ = "voicemail_messages"
    __table_args__ = (
        UniqueConstraint("node", "spool_path", name="uq_voicemail_messages_node_spool_path"),
        Index("ix_voicemail_messages_recorded_at", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    spool_path: Mapped[str] = mapped_column(String(500))
    site_code: Mapped[str] = mapped_column(String(32))
    call_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    linkedid: Mapped[str | None] = mapped_column(String(64), default=None)
    caller_number: Mapped[str | None] = mapped_column(String(64), default=None)
    recorded_at: Mapped[datetime]
    ingested_at: Mapped[datetime]
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    # Relative to the backend's message store (settings.voicemail.store_dir).
    original_path: Mapped[str] = mapped_column(String(500))
    web_path: Mapped[str | None] = mapped_column(String(500), default=None)
    duration_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    audio: Mapped[MessageAudio] = mapped_column(_enum(MessageAudio), default=MessageAudio.PENDING)
    audio_reason: Mapped[str] = mapped_column(Text, default="")
    transcription: Mapped[Transcription] = mapped_column(_enum(Transcription),
                                                         default=Transcription.PENDING)
    transcript: Mapped[str | None] = mapped_column(Text, default=None)
    transcription_reason: Mapped[str] = mapped_column(Text, default="")
    transcription_model: Mapped[str | None] = mapped_column(String(200), default=None)
    keyword_hits: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    # Processing (audio, transcription, keyword scan, callback task) is claimed by one
    # backend node at a time; a claim older than the processing timeout is taken over.
    processing_node: Mapped[str | None] = mapped_column(String(64), default=None)
    processing_since: Mapped[datetime | None] = mapped_column(default=None)
    processed_at: Mapped[datetime | None] = mapped_column(default=None)


class CallbackState(enum.StrEnum):
    PENDING = "pending"  # waiting for its due time or next attempt
    DIALING = "dialing"  # an attempt is claimed and in progress
    DONE = "done"  # reached the caller
    CLOSED = "closed"  # no more attempts: out of retries, invalid number, not safe, by hand


class CallbackTask(Base):
    """A promised call back: from a voicemail message, or a caller who left a queue asking to
    be called back. Attempts are claimed in the database before they are dialled."""

    __tablename__ = "callback_tasks"
    __table_args__ = (Index("ix_callback_tasks_state_next", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_code: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("voicemail_messages.id", ondelete="SET NULL"), default=None, unique=True)
    call_id: Mapped[str | None] = mapped_column(String(32), default=None)
    source: Mapped[str] = mapped_column(String(16), default="voicemail")  # or "queue"
    queue: Mapped[str | None] = mapped_column(String(64), default=None)
    number: Mapped[str | None] = mapped_column(String(64), default=None)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    untranscribed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    # When the caller asked (the message's time; a queued caller's join time keeps the place).
    requested_at: Mapped[datetime]
    due_at: Mapped[datetime]
    deadline_at: Mapped[datetime | None] = mapped_column(default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    state: Mapped[CallbackState] = mapped_column(_enum(CallbackState),
                                                 default=CallbackState.PENDING)
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    assigned_counsellor_id: Mapped[int | None] = mapped_column(
        ForeignKey("counsellors.id", ondelete="SET NULL"), default=None)
    attempts_made: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(Text, default="")
    closed_at: Mapped[datetime | None] = mapped_column(default=None)

    attempts: Mapped[list[CallbackAttempt]] = relationship(
        back_populates="task", cascade="all, delete-orphan", order_by="CallbackAttempt.number")


class CallbackAttempt(Base):
    """One dial of a callback task. (task, number) is unique: the node that inserts the row
    has claimed the attempt; no other node dials it, and it is never dialled twice."""

    __tablename__ = "callback_attempts"
    __table_args__ = (UniqueConstraint("task_id", "number", name="uq_callback_attempts_task_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("callback_tasks.id", ondelete="CASCADE"),
                                         index=True)
    number: Mapped[int] = mapped_column(Integer)
    node: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime]
    counsellor_id: Mapped[int | None] = mapped_column(
        ForeignKey("counsellors.id", ondelete="SET NULL"), default=None)
    dialed_number: Mapped[str | None] = mapped_column(String(64), default=None)
    action_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # reached, no_answer, busy, invalid_number, not_safe, counsellor_unavailable, failed, lost
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    detail: Mapped[str] = mapped_column(Text, default="")
    ended_at: Mapped[datetime | None] = mapped_column(default=None)

    task: Mapped[CallbackTask] = relationship(back_populates="attempts")


class CrisisKeyword(Base):
    """An entry of the editable crisis keyword list (routing/keywords.py matches them)."""

    __tablename__ = "crisis_keywords"

    id: Mapped[int] = mapped_column(primary_key=True)
    term: Mapped[str] = mapped_column(String(64), unique=True)
    category: Mapped[str] = mapped_column(String(32))
    synonyms: Mapped[list[str]] = mapped_column(JSON, default=list)
    exclusions: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class IncidentState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Incident(Base):
    """One crisis episode: its signals, alerts, the 110 bridge and the outcome, with a
    timeline (IncidentEvent). One open incident per call (`linkedid`); an incident without
    a call (a voicemail keyword) has its message instead."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_state_deadline", "state", "deadline_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_code: Mapped[str] = mapped_column(String(32))
    state: Mapped[IncidentState] = mapped_column(_enum(IncidentState),
                                                 default=IncidentState.OPEN)
    severity: Mapped[str] = mapped_column(String(16), default="critical")
    # What raised it first: crisis_option, keyword, voicemail_keyword, marked_high_risk,
    # police, deadline.
    source: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text, default="")
    call_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    linkedid: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("voicemail_messages.id", ondelete="SET NULL"), default=None)
    caller_number: Mapped[str | None] = mapped_column(String(64), default=None)
    caller_name: Mapped[str | None] = mapped_column(String(200), default=None)
    call_started_at: Mapped[datetime | None] = mapped_column(default=None)
    counsellor_id: Mapped[int | None] = mapped_column(
        ForeignKey("counsellors.id", ondelete="SET NULL"), default=None)
    counsellor_name: Mapped[str | None] = mapped_column(String(200), default=None)
    notes: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(Text, default="")
    opened_at: Mapped[datetime]
    # Crisis intervention must start by then (routing/deadlines.py); when it did.
    deadline_at: Mapped[datetime]
    intervention_at: Mapped[datetime | None] = mapped_column(default=None)
    warned_at: Mapped[datetime | None] = mapped_column(default=None)
    escalated_at: Mapped[datetime | None] = mapped_column(default=None)
    # The caller hung up before the crisis was handled: someone must call back.
    callback_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    # The one-key police alert: who pressed, when, why; the conference and its recording.
    police_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    police_requested_by: Mapped[str | None] = mapped_column(String(200), default=None)
    police_reason: Mapped[str] = mapped_column(Text, default="")
    police_state: Mapped[str | None] = mapped_column(String(32), default=None)
    conference: Mapped[str | None] = mapped_column(String(64), default=None)
    recording_path: Mapped[str | None] = mapped_column(String(500), default=None)
    packet: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    closed_by: Mapped[str | None] = mapped_column(String(200), default=None)
    outcome: Mapped[str] = mapped_column(Text, default="")

    events: Mapped[list[IncidentEvent]] = relationship(
        back_populates="incident", cascade="all, delete-orphan", order_by="IncidentEvent.id")


class IncidentEvent(Base):
    """A line of an incident's timeline: a signal, an alert, a duty call, the 110 leg, a
    party leaving the conference, a note, a deadline."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"),
                                             index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(48))
    actor: Mapped[str | None] = mapped_column(String(200), default=None)
    summary: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    incident: Mapped[Incident] = relationship(back_populates="events")


class DutyOfficer(Base):
    """A person the duty alert chain may ring: a name and a phone number (a mobile through
    the carrier), optionally tied to a user of the admin web."""

    __tablename__ = "duty_officers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    number: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class DutyRosterEntry(Base):
    """A stretch of duty. Entries covering an instant, ordered by `position` then start,
    are the escalation order (routing/duty_chain.py)."""

    __tablename__ = "duty_roster"
    __table_args__ = (Index("ix_duty_roster_window", "starts_at", "ends_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    officer_id: Mapped[int] = mapped_column(ForeignKey("duty_officers.id", ondelete="CASCADE"),
                                            index=True)
    site_code: Mapped[str | None] = mapped_column(String(32), default=None)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    position: Mapped[int] = mapped_column(Integer, default=0)

    officer: Mapped[DutyOfficer] = relationship()


class AlertDelivery(Base):
    """One call of the duty chain to a duty phone for an alert (routing.duty_chain.Delivery)."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"),
                                          index=True)
    officer_id: Mapped[int | None] = mapped_column(
        ForeignKey("duty_officers.id", ondelete="SET NULL"), default=None)
    number: Mapped[str] = mapped_column(String(32))
    lap: Mapped[int] = mapped_column(Integer, default=1)
    at: Mapped[datetime]
    # Unique: two nodes that decide the same call at once insert the same id, and only one
    # of them dials (crisis/duty_calls.py).
    action_id: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    # answered, acknowledged, no_answer, busy, failed
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
