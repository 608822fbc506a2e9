"""The duty webhook: every new alert (and each incident packet) POSTed as signed JSON to
each configured URL — an SMS gateway, a chat bot — next to the log, Redis and the duty
officer's phone (a `DutyNotifier`).

Each request::

    POST <url>
    Content-Type: application/json            (UTF-8; Chinese text as is, not \\u-escaped)
    X-Hotline-Event: alert                    (or incident, …; also "type" in the body)
    X-Hotline-Delivery: <uuid4>               (the same on every retry: deduplicate on it)
    X-Hotline-Attempt: <1, 2, …>
    X-Hotline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

    {"type": "alert", "id": 42, "kind": "crisis_keyword", "severity": "critical",
     "site": "bj", "summary": "留言含危机关键词：自杀", "details": {...},
     "raised_at": "2027-02-10T03:00:00+08:00", "url": "https://…/alerts/42"}

A receiver verifies before it trusts anything: take `t` and `v1` from the header,
recompute HMAC-SHA256 over the bytes "<t>." followed by the raw request body (exactly as
received, before any JSON parsing), compare with `hmac.compare_digest`, and reject when
|now − t| > 300 s (a replayed request). `verify_signature` below does exactly that::

    from crisis.webhook import verify_signature

    body = await request.read()
    if not verify_signature(SECRET, request.headers["X-Hotline-Signature"], body):
        return web.Response(status=401)
    alert = json.loads(body)

`t` is real Unix time (not the hotline's clock, which may be fixed or shifted), taken
afresh at each attempt. Several `v1=` entries may come (a secret being rotated): one
match is enough. The secret is `webhook.secret`, generated once into var/secrets.toml
("webhook_secret") when not configured.

Delivery never blocks or breaks the caller: `notify`/`send` enqueue and return at once.
Each URL has its own bounded queue and its own owned task (`start`/`close`), so a slow
chat bot never holds up the SMS gateway. A request has `timeout_seconds`; network errors,
timeouts, 5xx and 429 are retried after `backoff_seconds`, doubling up to
`max_backoff_seconds` (429's Retry-After is honoured within that), until `max_attempts`
or `max_age_seconds`; any other status (4xx, a 3xx: redirects are not followed) fails at
once. A full queue drops its oldest delivery (counted, logged as an error). `health()`
gives the counters.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import hmac
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog
from yarl import URL

from hotline.alerts.services import AlertView
from hotline.tasks import cancel_and_wait, woken_or_timeout

if TYPE_CHECKING:
    from hotline.config import WebhookSettings

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Hotline-Signature"
EVENT_HEADER = "X-Hotline-Event"
DELIVERY_HEADER = "X-Hotline-Delivery"
ATTEMPT_HEADER = "X-Hotline-Attempt"
TOLERANCE_SECONDS = 300

_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_USER_AGENT = "hotline12355-webhook/1"


class WebhookConfigError(ValueError):
    """A webhook URL or the secret is unusable."""


# ---------------------------------------------------------------------------- signature


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def _digest(secret: str | bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(_key(secret), f"{timestamp}.".encode("ascii") + body,
                    hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The `X-Hotline-Signature` value for `body` sent at `timestamp` (Unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify_signature(secret: str | bytes, header: str, body: bytes | str,
                     now: float | None = None, tolerance: float = TOLERANCE_SECONDS) -> bool:
    """True when `header` (an `X-Hotline-Signature` value) signs `body` (the raw request
    body) with `secret`, at a time within `tolerance` seconds of `now` (default: the real
    time). Constant-time comparison; a malformed header is simply False."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == "v1":
            candidates.append(value.strip())
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected.encode("ascii"), candidate.encode("utf-8"))
               for candidate in candidates)


# ------------------------------------------------------------------------------ helpers


def _checked_url(raw: str) -> URL:
    try:
        url = URL(raw)
    except (ValueError, TypeError) as error:
        raise WebhookConfigError(f"webhook URL is not a URL: {raw!r} ({error})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise WebhookConfigError(
            f"webhook URL must be http:// or https:// with a host, not {_redacted(url)!r}")
    return url


def _redacted(url: URL) -> str:
    """The URL without credentials, query or fragment: chat bots keep their token there."""
    try:
        return str(url.with_user(None).with_query(None).with_fragment(None))
    except ValueError:
        return f"{url.scheme}://…"


def _json_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"),
                      default=str).encode("utf-8")


def alert_payload(alert: AlertView, *, link_template: str = "") -> dict[str, Any]:
    """The body of an "alert" event."""
    payload: dict[str, Any] = {
        "type": "alert",
        "id": alert.id,
        "kind": alert.kind,
        "severity": alert.severity,
        "site": alert.site,
        "summary": alert.summary,
        "details": alert.details,
        "raised_at": alert.raised_at.isoformat(),
    }
    if link_template:
        payload["url"] = link_template.format(id=alert.id, kind=alert.kind,
                                              site=alert.site or "")
    return payload


# ----------------------------------------------------------------------------- delivery


@dataclass
class _Delivery:
    id: str
    event: str
    body: bytes
    created: float  # loop time
    seq: int
    due: float = 0.0
    attempts: int = 0


@dataclass
class _Lane:
    """One URL: its queue (oldest first) and the task that delivers it."""

    url: URL
    name: str  # redacted, for logs and health
    pending: list[_Delivery] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: _Delivery | None = None
    task: asyncio.Task[None] | None = None
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None


class _Retry(Exception):
    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after = after


class _Fail(Exception):
    pass


class WebhookNotifier:
    """A `DutyNotifier` that POSTs signed JSON to each URL in the background."""

    def __init__(self, *, urls: Sequence[str], secret: str, timeout_seconds: float = 5.0,
                 max_attempts: int = 8, backoff_seconds: float = 1.0,
                 max_backoff_seconds: float = 60.0, max_age_seconds: float = 900.0,
                 queue_size: int = 1000, link_template: str = "",
                 wall_clock: Callable[[], float] = time.time) -> None:
        parsed = [_checked_url(raw) for raw in urls]
        if parsed and not secret:
            raise WebhookConfigError("webhook URLs are configured but the secret is empty")
        if max_attempts < 1 or queue_size < 1 or timeout_seconds <= 0:
            raise WebhookConfigError(
                "webhook max_attempts and queue_size must be ≥ 1, timeout_seconds > 0")
        try:
            link_template.format(id=0, kind="", site="")
        except (KeyError, IndexError, ValueError) as error:
            raise WebhookConfigError(f"webhook link_template may use {{id}}, {{kind}} and "
                                     f"{{site}} only: {link_template!r} ({error!r})") from None
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._max_age = max_age_seconds
        self._queue_size = queue_size
        self._link_template = link_template
        self._wall_clock = wall_clock
        self._lanes = [_Lane(url=url, name=_redacted(url)) for url in parsed]
        self._seq = itertools.count()
        self._session: aiohttp.ClientSession | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self.retries = 0
        self.abandoned = 0
        # The last problem on any URL ("<url>: <reason>") and when (Unix time).
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    @classmethod
    def from_settings(cls, settings: WebhookSettings) -> WebhookNotifier:
        return cls(urls=settings.urls, secret=settings.secret,
                   timeout_seconds=settings.timeout_seconds,
                   max_attempts=settings.max_attempts,
                   backoff_seconds=settings.backoff_seconds,
                   max_backoff_seconds=settings.max_backoff_seconds,
                   max_age_seconds=settings.max_age_seconds,
                   queue_size=settings.queue_size, link_template=settings.link_template)

    def __repr__(self) -> str:
        return f"WebhookNotifier({[lane.name for lane in self._lanes]})"

    # -- counters

    @property
    def enabled(self) -> bool:
        return bool(self._lanes)

    @property
    def sent(self) -> int:
        return sum(lane.sent for lane in self._lanes)

    @property
    def failed(self) -> int:
        return sum(lane.failed for lane in self._lanes)

    @property
    def dropped(self) -> int:
        return sum(lane.dropped for lane in self._lanes)

    @property
    def pending(self) -> int:
        """Deliveries not yet done: queued, waiting to retry, or in flight."""
        return sum(len(lane.pending) + (lane.in_flight is not None) for lane in self._lanes)

    def health(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled, "running": self._session is not None,
            "sent": self.sent, "failed": self.failed, "dropped": self.dropped,
            "retries": self.retries, "pending": self.pending, "abandoned": self.abandoned,
            "last_error": self.last_error, "last_error_at": self.last_error_at,
            "urls": [{"url": lane.name, "sent": lane.sent, "failed": lane.failed,
                      "dropped": lane.dropped, "pending": len(lane.pending),
                      "last_error": lane.last_error} for lane in self._lanes],
        }

    # -- lifecycle

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError("webhook notifier already closed")
        if self._session is not None or not self._lanes:
            return
        self._session = aiohttp.ClientSession(
            timeout=self._timeout, headers={"User-Agent": _USER_AGENT})
        for index, lane in enumerate(self._lanes):
            lane.task = asyncio.create_task(self._run(lane), name=f"duty-webhook-{index}")

    async def close(self) -> None:
        """Cancel every delivery (in flight, queued, waiting to retry) and wait for it."""
        self._closed = True
        left = self.pending
        for lane in self._lanes:
            await cancel_and_wait(lane.task)
            lane.task = None
        for lane in self._lanes:
            lane.pending.clear()
            lane.in_flight = None
        self._idle.set()
        if left:
            self.abandoned += left
            log.warning("duty webhook closed with deliveries not made", abandoned=left)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def wait_idle(self) -> None:
        """Wait until nothing is pending (delivered or failed); bound it with
        `asyncio.timeout` (a graceful shutdown, tests)."""
        await self._idle.wait()

    # -- enqueue

    async def notify(self, alert: AlertView) -> None:
        self.send("alert", alert_payload(alert, link_template=self._link_template))

    def send(self, event_type: str, payload: Mapping[str, Any]) -> str | None:
        """Queue `payload` (JSON-serialisable; "type" is set to `event_type`) for every URL;
        return at once with the delivery id, or None when no URL is configured."""
        if not _EVENT_TYPE.match(event_type):
            raise ValueError(f"webhook event type must match {_EVENT_TYPE.pattern}: "
                             f"{event_type!r}")
        if payload.get("type", event_type) != event_type:
            raise ValueError(f"payload type {payload['type']!r} is not {event_type!r}")
        if not self._lanes:
            return None
        delivery_id = str(uuid.uuid4())
        body = _json_bytes({"type": event_type, **payload})
        if self._closed:
            self.abandoned += len(self._lanes)
            log.error("duty webhook closed: not delivered", event_type=event_type,
                      delivery=delivery_id)
            return delivery_id
        now = asyncio.get_running_loop().time()
        for lane in self._lanes:
            self._push(lane, _Delivery(id=delivery_id, event=event_type, body=body,
                                       created=now, seq=next(self._seq), due=now))
        return delivery_id

    def _push(self, lane: _Lane, delivery: _Delivery) -> None:
        keys = [(item.created, item.seq) for item in lane.pending]
        lane.pending.insert(bisect.bisect(keys, (delivery.created, delivery.seq)), delivery)
        while len(lane.pending) > self._queue_size:
            oldest = lane.pending.pop(0)
            lane.dropped += 1
            log.error("duty webhook queue full: oldest delivery dropped", url=lane.name,
                      event_type=oldest.event, delivery=oldest.id, dropped=lane.dropped,
                      queue_size=self._queue_size)
        self._idle.clear()
        lane.wake.set()

    # -- deliver

    async def _run(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not lane.pending:
                self._check_idle()
                await lane.wake.wait()
                lane.wake.clear()
                continue
            delivery = min(lane.pending, key=lambda item: (item.due, item.seq))
            delay = delivery.due - loop.time()
            if delay > 0:
                await woken_or_timeout(lane.wake, delay)
                continue
            lane.pending.remove(delivery)
            lane.in_flight = delivery
            try:
                await self._attempt(lane, delivery)
            except Exception:  # a bug here must not end the lane's task
                log.exception("duty webhook delivery crashed", url=lane.name,
                              delivery=delivery.id)
                self._failed(lane, delivery, "internal error")
            finally:
                lane.in_flight = None

    async def _attempt(self, lane: _Lane, delivery: _Delivery) -> None:
        loop = asyncio.get_running_loop()
        delivery.attempts += 1
        try:
            await self._post(lane, delivery)
        except _Retry as retry:
            now = loop.time()
            wait = min(self._backoff * 2 ** min(delivery.attempts - 1, 30), self._max_backoff)
            if retry.after is not None:
                wait = min(max(wait, retry.after), self._max_backoff)
            if delivery.attempts >= self._max_attempts:
                self._failed(lane, delivery, f"{retry.reason} (after {delivery.attempts} "
                                             "attempts)")
            elif now + wait - delivery.created > self._max_age:
                self._failed(lane, delivery, f"{retry.reason} (gave up after "
                                             f"{now - delivery.created:.0f} s)")
            else:
                self.retries += 1
                self._error(lane, retry.reason)
                log.warning("duty webhook delivery will be retried", url=lane.name,
                            event_type=delivery.event, delivery=delivery.id,
                            attempt=delivery.attempts, retry_in=round(wait, 3),
                            reason=retry.reason)
                delivery.due = now + wait
                self._push(lane, delivery)
        except _Fail as failure:
            self._failed(lane, delivery, str(failure))
        else:
            lane.sent += 1
            log.info("duty webhook delivered", url=lane.name, event_type=delivery.event,
                     delivery=delivery.id, attempt=delivery.attempts)

    async def _post(self, lane: _Lane, delivery: _Delivery) -> None:
        assert self._session is not None
        timestamp = int(self._wall_clock())
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: delivery.id,
            ATTEMPT_HEADER: str(delivery.attempts),
            SIGNATURE_HEADER: sign(self._secret, delivery.body, timestamp),
        }
        try:
            async with self._session.post(lane.url, data=delivery.body, headers=headers,
                                          allow_redirects=False) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After", "")
                said = "" if 200 <= status < 300 else (
                    await response.content.read(200)).decode("utf-8", "replace").strip()
        except TimeoutError:
            raise _Retry(f"timed out after {self._timeout.total} s") from None
        except aiohttp.ClientError as error:
            raise _Retry(f"{type(error).__name__}: {error}") from None
        except OSError as error:
            raise _Retry(f"{type(error).__name__}: {error}") from None
        if 200 <= status < 300:
            return
        reason = f"HTTP {status}" + (f" {said!r}" if said else "")
        if status == 429 or status >= 500:
            after = float(retry_after) if retry_after.strip().isdigit() else None
            raise _Retry(reason, after)
        raise _Fail(reason)

    def _error(self, lane: _Lane, reason: str) -> None:
        lane.last_error = reason
        self.last_error = f"{lane.name}: {reason}"
        self.last_error_at = self._wall_clock()

    def _failed(self, lane: _Lane, delivery: _Delivery, reason: str) -> None:
        lane.failed += 1
        self._error(lane, reason)
        log.error("duty webhook delivery failed", url=lane.name, event_type=delivery.event,
                  delivery=delivery.id, attempts=delivery.attempts, reason=reason)

    def _check_idle(self) -> None:
        if self.pending == 0:
            self._idle.set()
