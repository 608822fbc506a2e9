"""The duty webhook against a real aiohttp server on loopback: signed JSON delivered, retried
on 5xx/429/network errors with (tiny) backoff, not on other 4xx, a bounded queue that
drops the oldest, and a close() that cancels what is left."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from crisis.webhook import (
    WebhookConfigError,
    WebhookNotifier,
    alert_payload,
    sign,
    verify_signature,
)
from hotline.alerts.services import AlertView
from hotline.config import Settings, WebhookSettings
from hotline.secrets import fill_generated_secrets, secrets_path

SECRET = "s3cret-shared-with-the-gateway"
SUMMARY = "夜间留言含危机关键词：自杀（来电 138****0000）"


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request; `script[path]` gives the statuses to answer in turn (then 200)."""

    seen: list[Seen] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    hang: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    base: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(request.path, dict(request.headers), await request.read()))
        self.arrived.set()
        if self.hang is not None:
            await self.hang.wait()
        statuses = self.script.get(request.path, [])
        status = statuses.pop(0) if statuses else 200
        headers = {"Retry-After": "0"} if status == 429 else {}
        return web.Response(status=status, text="no" if status >= 400 else "ok",
                            headers=headers)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", state.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        state.base = str(server.make_url("")).rstrip("/")
        yield state


def alert(**changes: Any) -> AlertView:
    at = datetime(2027, 2, 10, 3, 0, tzinfo=UTC)
    values: dict[str, Any] = dict(
        id=42, key="voicemail:7", kind="crisis_keyword", site="bj", severity="critical",
        summary=SUMMARY, details={"keywords": ["自杀"], "message_id": 7}, state="open",
        raised_at=at, last_seen_at=at, acknowledged_by=None, acknowledged_at=None,
        resolved_at=None)
    values.update(changes)
    return AlertView(**values)


def notifier(urls: list[str], **options: Any) -> WebhookNotifier:
    defaults: dict[str, Any] = dict(secret=SECRET, timeout_seconds=2.0, max_attempts=4,
                                    backoff_seconds=0.01, max_backoff_seconds=0.05)
    defaults.update(options)
    return WebhookNotifier(urls=urls, **defaults)


@contextlib.asynccontextmanager
async def running(hook: WebhookNotifier) -> AsyncIterator[WebhookNotifier]:
    """The notifier started, and closed afterwards whatever happens."""
    await hook.start()
    try:
        yield hook
    finally:
        await hook.close()


async def settled(hook: WebhookNotifier, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        await hook.wait_idle()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_alert_reaches_every_url_signed_with_chinese_intact(receiver) -> None:
    hook = notifier([receiver.url("/sms"), receiver.url("/bot?key=token")],
                    link_template="https://hotline.example.cn/alerts/{id}")
    async with running(hook):
        await hook.notify(alert())
        await settled(hook)

    assert sorted(seen.path for seen in receiver.seen) == ["/bot", "/sms"]
    assert hook.health()["sent"] == 2 and hook.failed == hook.dropped == 0
    for seen in receiver.seen:
        headers = seen.headers
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Hotline-Event"] == "alert"
        assert uuid.UUID(headers["X-Hotline-Delivery"]).version == 4
        signature = headers["X-Hotline-Signature"]
        assert verify_signature(SECRET, signature, seen.body)
        # Independently: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">
        fields = dict(part.split("=", 1) for part in signature.split(","))
        assert abs(int(fields["t"]) - time.time()) < 10
        expected = hmac.new(SECRET.encode(), fields["t"].encode() + b"." + seen.body,
                            hashlib.sha256).hexdigest()
        assert hmac.compare_digest(fields["v1"], expected)
        # UTF-8 as is, not \\u-escaped.
        assert SUMMARY.encode("utf-8") in seen.body
        assert seen.json == {
            "type": "alert", "id": 42, "kind": "crisis_keyword", "severity": "critical",
            "site": "bj", "summary": SUMMARY,
            "details": {"keywords": ["自杀"], "message_id": 7},
            "raised_at": "2027-02-10T03:00:00+00:00",
            "url": "https://hotline.example.cn/alerts/42"}
    deliveries = {seen.headers["X-Hotline-Delivery"] for seen in receiver.seen}
    assert len(deliveries) == 1  # one event, one id at every URL


async def test_send_carries_another_event_type(receiver) -> None:
    hook = notifier([receiver.url("/bot")])
    async with running(hook):
        packet = {"incident_id": 3, "caller": "13800000000", "caller_name": "张三",
                  "location": "北京市海淀区"}
        delivery = hook.send("incident", packet)
        await settled(hook)
        with pytest.raises(ValueError):
            hook.send("incident\r\nX-Evil: 1", packet)
        with pytest.raises(ValueError):
            hook.send("incident", {"type": "alert"})
    [seen] = receiver.seen
    assert seen.headers["X-Hotline-Event"] == "incident"
    assert seen.headers["X-Hotline-Delivery"] == delivery
    assert seen.json == {"type": "incident", **packet}
    assert verify_signature(SECRET, seen.headers["X-Hotline-Signature"], seen.body)


@pytest.mark.parametrize("first", [500, 503, 429])
async def test_a_server_error_is_retried_then_delivered_once(receiver, first) -> None:
    receiver.script["/sms"] = [first]
    hook = notifier([receiver.url("/sms")])
    async with running(hook):
        await hook.notify(alert())
        await settled(hook)
    assert len(receiver.seen) == 2
    assert [seen.headers["X-Hotline-Attempt"] for seen in receiver.seen] == ["1", "2"]
    assert len({seen.headers["X-Hotline-Delivery"] for seen in receiver.seen}) == 1
    assert all(verify_signature(SECRET, seen.headers["X-Hotline-Signature"], seen.body)
               for seen in receiver.seen)
    assert (hook.sent, hook.failed, hook.retries) == (1, 0, 1)
    assert hook.last_error is not None and f"HTTP {first}" in hook.last_error


async def test_a_client_error_is_not_retried(receiver) -> None:
    receiver.script["/sms"] = [400]
    hook = notifier([receiver.url("/sms?token=hidden")])
    async with running(hook):
        await hook.notify(alert())
        await settled(hook)
    assert len(receiver.seen) == 1
    assert (hook.sent, hook.failed, hook.retries) == (0, 1, 0)
    assert hook.last_error is not None and "HTTP 400" in hook.last_error
    assert "hidden" not in json.dumps(hook.health())  # a bot's token never shown


async def test_a_receiver_down_is_retried_then_failed_without_blocking() -> None:
    hook = notifier([f"http://127.0.0.1:{free_port()}/sms"], max_attempts=3)
    async with running(hook):
        started = time.perf_counter()
        await hook.notify(alert())
        assert time.perf_counter() - started < 0.05
        assert hook.pending == 1
        await settled(hook)
    assert (hook.sent, hook.failed, hook.retries) == (0, 1, 2)
    assert hook.last_error is not None and "after 3 attempts" in hook.last_error


async def test_a_slow_receiver_times_out_and_is_retried(receiver) -> None:
    receiver.hang = asyncio.Event()
    hook = notifier([receiver.url("/bot")], timeout_seconds=0.2, max_attempts=2)
    await hook.start()
    try:
        await hook.notify(alert())
        await settled(hook)
    finally:
        receiver.hang.set()
        await hook.close()
    assert len(receiver.seen) == 2
    assert (hook.sent, hook.failed, hook.retries) == (0, 1, 1)
    assert hook.last_error is not None and "timed out" in hook.last_error


async def test_a_full_queue_drops_the_oldest(receiver) -> None:
    hook = notifier([receiver.url("/sms")], queue_size=3)
    for number in range(1, 6):  # not started yet: everything waits in the queue
        await hook.notify(alert(id=number))
    assert (hook.dropped, hook.pending) == (2, 3)
    async with running(hook):
        await settled(hook)
    assert [seen.json["id"] for seen in receiver.seen] == [3, 4, 5]
    assert hook.health()["dropped"] == 2 and hook.sent == 3


async def test_close_cancels_deliveries_in_flight_and_waiting(receiver) -> None:
    receiver.hang = asyncio.Event()
    hook = notifier([receiver.url("/sms")])
    await hook.start()
    await hook.notify(alert(id=1))
    await hook.notify(alert(id=2))
    async with asyncio.timeout(5):
        await receiver.arrived.wait()
    tasks = [task for task in asyncio.all_tasks() if task.get_name().startswith("duty-webh")]
    assert tasks
    started = time.perf_counter()
    await hook.close()
    assert time.perf_counter() - started < 1
    assert all(task.done() for task in tasks)
    assert (hook.sent, hook.pending, hook.abandoned) == (0, 0, 2)
    await hook.close()  # twice is harmless
    receiver.hang.set()


def test_verification_rejects_tampering_old_timestamps_and_garbage() -> None:
    body = json.dumps({"summary": SUMMARY}, ensure_ascii=False).encode()
    now = 1_800_000_000
    header = sign(SECRET, body, now)
    assert verify_signature(SECRET, header, body, now)
    assert verify_signature(SECRET, header, body.decode(), now + 299)
    assert not verify_signature(SECRET, header, body + b" ", now)
    assert not verify_signature(SECRET, header, body.replace("自杀".encode(), b"x"), now)
    assert not verify_signature("another secret", header, body, now)
    assert not verify_signature(SECRET, header, body, now + 301)  # replayed later
    assert not verify_signature(SECRET, header, body, now - 301)  # from the future
    assert verify_signature(SECRET, header, body, now + 3600, tolerance=3600)
    # A timestamp moved without re-signing no longer matches.
    assert not verify_signature(SECRET, header.replace(f"t={now}", f"t={now + 1}"), body,
                                now)
    # Rotation: several v1 entries, one matching is enough.
    digest = header.split("v1=")[1]
    assert verify_signature(SECRET, f"t={now},v1={'0' * 64},v1={digest}", body, now)
    for garbage in ("", "v1=" + digest, f"t={now}", f"t=soon,v1={digest}", "nonsense"):
        assert not verify_signature(SECRET, garbage, body, now)


@pytest.mark.parametrize("url", ["ftp://gateway.example.cn/sms", "gateway.example.cn/sms",
                                 "http://", "file:///etc/passwd", "redis://127.0.0.1"])
def test_only_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(WebhookConfigError, match="http"):
        WebhookNotifier(urls=["https://ok.example.cn/hook", url], secret=SECRET)


def test_a_secret_is_required_with_urls_and_a_link_template_is_checked() -> None:
    with pytest.raises(WebhookConfigError, match="secret"):
        WebhookNotifier(urls=["https://ok.example.cn/hook"], secret="")
    hook = WebhookNotifier(urls=[], secret="")
    assert not hook.enabled
    with pytest.raises(WebhookConfigError, match="link_template"):
        WebhookNotifier(urls=[], secret="", link_template="https://x/{alert_id}")


async def test_without_urls_notify_does_nothing() -> None:
    hook = WebhookNotifier(urls=[], secret="")
    await hook.start()
    await hook.notify(alert())
    assert hook.pending == 0 and hook.send("incident", {}) is None
    await hook.close()


def test_settings_generate_the_secret_once(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HOTLINE_CONFIG", raising=False)
    monkeypatch.setenv("HOTLINE_WEBHOOK__URLS", '["https://sms.example.cn/hook"]')
    settings = fill_generated_secrets(Settings(var_dir=tmp_path / "var"))
    assert settings.webhook.urls == ["https://sms.example.cn/hook"]
    assert len(settings.webhook.secret) >= 32
    assert "webhook_secret" in secrets_path(tmp_path / "var").read_text()
    again = fill_generated_secrets(Settings(var_dir=tmp_path / "var"))
    assert again.webhook.secret == settings.webhook.secret
    hook = WebhookNotifier.from_settings(settings.webhook)
    assert hook.enabled and "sms.example.cn" in repr(hook)
    kept = WebhookSettings(urls=["http://127.0.0.1:9/x"], secret="given", queue_size=5)
    assert fill_generated_secrets(Settings(var_dir=tmp_path / "v2", webhook=kept)
                                  ).webhook.secret == "given"


def test_alert_payload_without_a_link_has_no_url() -> None:
    payload = alert_payload(alert(site=None))
    assert "url" not in payload and payload["site"] is None



async def test_a_delivery_older_than_max_age_is_given_up() -> None:
    hook = notifier([f"http://127.0.0.1:{free_port()}/sms"], max_attempts=100,
                    backoff_seconds=0.02, max_backoff_seconds=0.02, max_age_seconds=0.05)
    async with running(hook):
        await hook.notify(alert())
        await settled(hook)
    assert hook.failed == 1 and 1 <= hook.retries < 5
    assert hook.last_error is not None and "gave up after" in hook.last_error
