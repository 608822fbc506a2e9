"""The one typed configuration loader: defaults → hotline.toml → HOTLINE_* environment.

Nested settings use a double underscore in the environment, e.g.
``HOTLINE_DATABASE__URL=postgresql://...`` or ``HOTLINE_CLOCK__FIXED=2026-12-01T09:00:00+08:00``.
The TOML file is ``./hotline.toml`` unless ``HOTLINE_CONFIG`` names another one.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hotline12355"


class ClockSettings(BaseModel):
    """One clock for every time-based decision: a fixed instant, or an offset from real time."""

    fixed: datetime | None = None
    offset_seconds: float = 0.0
    timezone: str = "Asia/Shanghai"


class DatabaseSettings(BaseModel):
    # Empty means SQLite under the var directory.
    url: str = ""
    echo: bool = False


class RedisSettings(BaseModel):
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "hotline:"
    # Live state is a convenience; a slow Redis must never hold up a call decision.
    timeout_seconds: float = 0.5


class AmiSettings(BaseModel):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "hotline"
    # Empty means generated once into var/secrets.toml.
    secret: str = ""
    action_timeout_seconds: float = 5.0
    # Callbacks (and later duty alerts) are dialled with Originate, as powerful as `system`
    # in AMI's own words: a second user that may only originate, reads no events, and is
    # used by nothing but the dialler.
    dialer_username: str = "hotline-dialer"
    # Empty means generated once into var/secrets.toml.
    dialer_secret: str = ""
    reconnect_min_seconds: float = 0.5
    reconnect_max_seconds: float = 15.0


class AgiSettings(BaseModel):
    # False runs this process without the FastAGI server (it runs elsewhere, or is down).
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 4573
    # How Asterisk reaches the FastAGI server (hagi:// SRV names work here in production).
    url: str = "agi://127.0.0.1:4573"
    header_timeout_seconds: float = 5.0
    command_timeout_seconds: float = 30.0
    # Keep every AGI step's duration in memory (the last 200,000) for exact percentiles:
    # GET /api/agi/step-samples (admin). For benchmarks; /metrics has the histogram always.
    keep_step_samples: bool = False
    # The classic AGI script (pyst2) the dialplan runs when the FastAGI server is
    # unreachable: a path on the Asterisk host (inside the chroot in the sandbox).
    classic_command: str = "/opt/hotline12355/bin/hotline-ivr-classic"


class WebSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    # Tokens from POST /api/auth/login expire after this; users and tokens live in the
    # database (`hotline users ...`), there is no token in the configuration.
    login_token_hours: float = 12.0


class IvrSettings(BaseModel):
    # Seconds to wait for a digit after the menu prompt ends.
    digit_timeout_seconds: float = 5.0
    crisis_priority: int = 10
    normal_priority: int = 0


class QueueDefaults(BaseModel):
    # How long a caller waits in a queue before the site's on-call numbers are dialled.
    wait_timeout_seconds: int = 90
    crisis_wait_timeout_seconds: int = 45
    # Crisis queue: specialists alone first, then every counsellor after this many seconds.
    crisis_widen_after_seconds: int = 15
    member_ring_seconds: int = 15
    oncall_ring_seconds: int = 30
    # After a call, this long before a counsellor is offered the next one (per queue in
    # the database; shared across queues: shared_lastcall).
    wrapup_seconds: int = 10
    # Psychological and legal queues: after this long waiting, a caller is offered to
    # press 1, hang up and be called back in their turn (0: never offered). Never in the
    # crisis queue.
    callback_offer_seconds: int = 30


class StaffingSettings(BaseModel):
    """Queue membership follows the roster: a pass every `tick_seconds` (shift boundaries
    and pauses that end by themselves are applied within one tick)."""

    tick_seconds: float = 1.0
    # A pass recomputes the whole roster's membership; under load nearly every read of AMI
    # events pokes one, so pokes within this long of a pass coalesce into the next
    # (docs/benchmarks.md: a pass per poke takes most of the listener's time).
    min_pass_seconds: float = 0.1
    # Counsellors' live states are re-published this often (wrap-up ends without an event).
    live_refresh_seconds: float = 2.0
    # The line watchdog: how often it looks, and its default thresholds (per site and per
    # queue in the database).
    watchdog_seconds: float = 5.0
    wait_alert_seconds: int = 120
    trunk_alert_seconds: float = 30.0


class AsteriskSettings(BaseModel):
    """The sandboxed Asterisk 22 (a Debian sid chroot) or the operator's own."""

    chroot_dir: Path = Field(default_factory=lambda: _default_cache_dir() / "asterisk-sid")
    # Where the dialplan records voicemail messages (a path on the Asterisk host).
    voicemail_spool: str = "/var/spool/asterisk/hotline-voicemail"
    debian_suite: str = "sid"
    debian_mirror: str = ""
    sip_bind: str = "0.0.0.0"
    sip_port: int = 5060
    # The simulated carrier: its own loopback address, answering outbound calls.
    carrier_address: str = "127.0.0.2"
    carrier_port: int = 5070
    # Seconds between OPTIONS pings to the carrier (0: off; the watchdog then can't tell).
    carrier_qualify_seconds: int = 30
    # Where rendered configuration goes when not writing into the sandbox.
    render_dir: Path | None = None
    # Asterisk's sounds directory as Asterisk sees it, and the language of our prompts.
    sounds_language: str = "zh"
    node_name: str = "sandbox"
    # Verbose dialplan trace in the sandbox's /var/log/asterisk/full (debugging; costs CPU).
    full_log: bool = False
    # Render the benchmark's extensions (99001 FastAGI IVR, 99002 the same in dialplan).
    bench: bool = False
    # Cloud seats (counsellors at home on a softphone): SIP over TLS on this port, with
    # SRTP. The server certificate and key as Asterisk reads them: generated into
    # <var>/tls/ and installed at these paths in the sandbox; your own in production.
    tls_port: int = 5061
    tls_cert_file: str = "/etc/asterisk/keys/hotline-server.crt"
    tls_key_file: str = "/etc/asterisk/keys/hotline-server.key"
    # Names and addresses the generated server certificate is valid for (besides this
    # machine's hostname, its outward address and 127.0.0.1).
    tls_names: list[str] = Field(default_factory=list)
    # True (production): a cloud seat is called only over TLS, with SRTP required. False
    # (the sandbox's sipp softphones, a demo with a plain softphone): TLS and SRTP are
    # offered, UDP and plain RTP still work.
    cloud_seat_tls_required: bool = True
    # OPTIONS ping to each cloud seat: an unreachable softphone is marked so within this
    # many seconds (and not rung). 0 disables (sipp softphones do not answer OPTIONS).
    cloud_seat_qualify_seconds: int = 30


class RulesSettings(BaseModel):
    """Routing rules: every node reloads the published rules on a Redis message and, as a
    backstop when Redis is down, every `refresh_seconds`."""

    refresh_seconds: float = 60.0
    # The /api/health calendar check warns when these coming days lack official dates.
    calendar_warning_days: int = 60
    # Where the snapshot of the published rules is written for the classic AGI fallback
    # (a directory Asterisk's host can read); the sandbox's when empty.
    snapshot_dir: Path | None = None


class PromptSettings(BaseModel):
    """The prompt library: recordings administrators upload, or text spoken by espeak-ng."""

    # Asterisk's sounds directory as this process reaches it (a shared mount in production);
    # empty means the sandbox's (<asterisk.chroot_dir>/usr/share/asterisk/sounds).
    sounds_dir: Path | None = None
    # Longest recording accepted, and largest upload read.
    max_duration_seconds: float = 600.0
    max_upload_bytes: int = 200 * 1024 * 1024


class LockoutSettings(BaseModel):
    """Lock-out of addresses that keep failing SIP authentication: fail2ban reads
    Asterisk's security log and drops their packets (nftables) for `ban_seconds`; each ban
    and its end reach the backend's audit log and alerts as an AMI UserEvent."""

    enabled: bool = True
    max_failures: int = 5
    find_seconds: int = 600
    ban_seconds: int = 3600
    # Never locked out: the Asterisk host itself (and, in the sandbox, the carrier).
    ignore: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1"])
    # Asterisk's security log as the fail2ban host reads it; empty means the sandbox's.
    security_log: Path | None = None
    # The AMI user whose only right is to send UserEvents (fail2ban's notifier).
    ami_username: str = "hotline-lockout"
    # Empty means generated once into var/secrets.toml.
    ami_secret: str = ""


class VoicemailSettings(BaseModel):
    """Messages callers leave: Asterisk records them into its spool
    (`asterisk.voicemail_spool`); the backend ingests each file once, keeps the original,
    makes a web copy, transcribes it and schedules the callback."""

    # The spool as this process reaches it (the Asterisk host's path or a shared mount);
    # empty means the sandbox's (<asterisk.chroot_dir>/<asterisk.voicemail_spool>).
    spool_dir: Path | None = None
    # Originals and web copies; empty means <var_dir>/voicemail.
    store_dir: Path | None = None
    # The spool is scanned this often; a file not announced by the dialplan is taken once
    # Asterisk has completed its WAV header and it has not changed for `settle_seconds`,
    # or, header never completed (Asterisk died mid-recording), after `stale_seconds`.
    scan_seconds: float = 1.0
    settle_seconds: float = 3.0
    stale_seconds: float = 600.0
    # What the dialplan's Record() is given: longest message, silence that ends it.
    max_seconds: int = 180
    # Callers often pause before they speak, or between sentences: not too short.
    silence_seconds: int = 6
    # A vosk model directory (vosk-model-small-cn-0.22 in production); empty: no
    # transcription (messages are marked untranscribed and listened to first).
    model_dir: Path | None = None
    # Transcription worker processes (each loads the model once).
    workers: int = 1
    # The callback dialler: how often it looks for due callbacks, how long a counsellor's
    # phone rings, when an attempt whose outcome never came is closed as lost, and how
    # many callbacks one site dials at once (urgent ones are never held back).
    # Off: callbacks wait in the worklist for people to make them by hand.
    dial_callbacks: bool = True
    dial_tick_seconds: float = 5.0
    counsellor_ring_seconds: int = 30
    caller_ring_seconds: int = 45
    lost_after_seconds: float = 600.0
    max_dialing_per_site: int = 2


class WebhookSettings(BaseModel):
    """The duty webhook (crisis/webhook.py): every new alert, and later each incident
    packet, POSTed as signed JSON to each URL (an SMS gateway, a chat bot)."""

    # http(s) URLs; empty: no webhook. A chat bot's URL often holds its token: never logged.
    urls: list[str] = Field(default_factory=list)
    # HMAC-SHA256 key shared with the receivers; empty means generated once into
    # var/secrets.toml ("webhook_secret"): give that value to the receivers.
    secret: str = ""
    # Per request; then retried (network errors, 5xx, 429) after backoff_seconds,
    # doubling up to max_backoff_seconds, until max_attempts or max_age_seconds.
    timeout_seconds: float = 5.0
    max_attempts: int = 8
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    max_age_seconds: float = 900.0
    # Deliveries waiting per URL; when full the oldest is dropped (counted, logged).
    queue_size: int = 1000
    # A link to the alert for the receiver ("url" in the body), e.g.
    # "https://hotline.example.cn/alerts/{id}"; empty: no link.
    link_template: str = ""


class CrisisSettings(BaseModel):
    """Crisis alerts and the one-key 110 bridge (crisis/)."""

    # The duty alert chain (routing/duty_chain.py): a duty phone is rung again every
    # `repeat_seconds` until someone presses 1 (or acknowledges in the API), and the next
    # person on the duty roster is rung `escalate_seconds` after the first call.
    repeat_seconds: float = 120.0
    escalate_seconds: float = 300.0
    # How long a duty phone rings, and how often the chain looks at open crisis alerts.
    duty_ring_seconds: int = 30
    tick_seconds: float = 1.0
    # Deadlines (routing/deadlines.py): crisis intervention, case reply, consultation reply.
    crisis_deadline_minutes: float = 30.0
    case_deadline_hours: float = 48.0
    consultation_deadline_hours: float = 24.0
    deadline_near_fraction: float = 0.8
    # The police: the number dialled through the carrier, how long it rings, how many
    # times it is tried when busy or failing, and the pause between tries.
    police_number: str = "110"
    police_ring_seconds: int = 30
    police_attempts: int = 3
    police_retry_seconds: float = 3.0
    # The counsellor's in-call feature code for the police alert (features applicationmap).
    police_feature_code: str = "*0"
    # The counsellor's in-call feature code that marks the call high-risk (an incident).
    high_risk_feature_code: str = "*8"
    # Who is rung into the conference when the counsellor's leg drops (a supervisor's
    # number through the carrier; empty: the first person on the duty roster).
    supervisor_number: str = ""
    # Where Asterisk records the police conference (a path on the Asterisk host), and
    # the same directory as this process reaches it (empty: the sandbox's).
    recording_dir: str = "/var/spool/asterisk/monitor/hotline"
    recording_local_dir: Path | None = None
    # How often that directory is read for police calls the dialplan made alone, with the
    # backend unreachable (crisis/police_fallback.py).
    fallback_scan_seconds: float = 5.0
    # The night attendant (crisis/attendant.py): Asterisk streams a listening caller's audio
    # over AudioSocket to this address (loopback: the protocol has no authentication) and a
    # vosk recognizer listens for crisis keywords. Its model: `attendant_model_dir`, else the
    # voicemail model; none (or `attendant_enabled` off): the attendant offers crisis by key.
    attendant_enabled: bool = True
    attendant_host: str = "127.0.0.1"
    attendant_port: int = 4575
    attendant_model_dir: Path | None = None
    # The longest a caller is listened to before returning to the menu; recognizer threads.
    attendant_listen_seconds: float = 30.0
    attendant_threads: int = 2
    # Tests only: this text is added to the recognizer's output once the call has streamed
    # `attendant_inject_after_seconds` of audio (a Chinese keyword a Korean model never says).
    attendant_inject_text: str = ""
    attendant_inject_after_seconds: float = 3.0

    @field_validator("police_feature_code", "high_risk_feature_code")
    @classmethod
    def _feature_code(cls, value: str) -> str:
        if not value or len(value) > 8 or any(c not in "0123456789*#" for c in value):
            raise ValueError("a feature code is 1 to 8 of 0-9 * #")
        return value

    @field_validator("police_number", "supervisor_number")
    @classmethod
    def _number(cls, value: str) -> str:
        if value and not all(c in "0123456789+" for c in value):
            raise ValueError("a phone number is digits with an optional +")
        return value


class DemoSettings(BaseModel):
    site_code: str = "default"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HOTLINE_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    var_dir: Path = Field(default_factory=lambda: Path.cwd() / "var")
    log_level: str = "INFO"
    log_json: bool = False
    clock: ClockSettings = Field(default_factory=ClockSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    ami: AmiSettings = Field(default_factory=AmiSettings)
    agi: AgiSettings = Field(default_factory=AgiSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    ivr: IvrSettings = Field(default_factory=IvrSettings)
    queues: QueueDefaults = Field(default_factory=QueueDefaults)
    staffing: StaffingSettings = Field(default_factory=StaffingSettings)
    asterisk: AsteriskSettings = Field(default_factory=AsteriskSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    lockout: LockoutSettings = Field(default_factory=LockoutSettings)
    prompts: PromptSettings = Field(default_factory=PromptSettings)
    voicemail: VoicemailSettings = Field(default_factory=VoicemailSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    crisis: CrisisSettings = Field(default_factory=CrisisSettings)

    @field_validator("var_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("HOTLINE_CONFIG", "hotline.toml"))
        toml_source = TomlConfigSettingsSource(settings_cls, toml_file=toml_path)
        # Earlier sources win: explicit arguments, then environment, then the TOML file.
        return (init_settings, env_settings, toml_source)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.var_dir / 'hotline.sqlite3'}"


def load_settings(**overrides: Any) -> Settings:
    """Load settings and fill generated secrets (never committed) from var/secrets.toml."""
    from hotline.secrets import fill_generated_secrets

    settings = Settings(**overrides)
    return fill_generated_secrets(settings)
