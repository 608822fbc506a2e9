"""What a waiting caller hears is Mandarin: app_queue's announcements and numbers come from
sounds/zh (our 8 kHz WAVs, played as slin), never from the packaged English GSM files.

Asterisk logs every file it plays at verbose level 3 ("Playing 'queue-thereare.slin'
(language 'zh')"); the test adds a log channel for that while the calls run.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotline.asterisk.sandbox import AsteriskSandbox
from hotline.config import load_settings
from tests.integration.conftest import Backend
from tests.integration.sipp import Caller, softphone
from tests.integration.test_calls import caller_number

pytestmark = pytest.mark.integration

PLAYING = re.compile(r"<([^>]+)> Playing '([^']+)\.(\w+)'.*\(language '([^']*)'\)")


class Heard(list[tuple[str, str, str]]):
    """(sound, format, language) of every file played, and the sounds of each channel."""

    def __init__(self) -> None:
        super().__init__()
        self.by_channel: dict[str, set[str]] = {}


def _sandbox() -> AsteriskSandbox:
    settings = load_settings()
    return AsteriskSandbox(settings=settings.asterisk, ami=settings.ami,
                           var_dir=settings.var_dir)


@contextlib.contextmanager
def heard(sandbox: AsteriskSandbox) -> Iterator[Heard]:
    """Every file Asterisk plays inside the block (on any channel)."""
    channel = f"hotline-heard-{int(time.time())}"
    played = Heard()
    sandbox.cli(f"logger add channel {channel} verbose(3)")
    path = sandbox.host_path(f"/var/log/asterisk/{channel}")
    try:
        yield played
    finally:
        time.sleep(1)
        sandbox.cli(f"logger remove channel {channel}")
        text = path.read_text(errors="replace") if path.exists() else ""
        path.unlink(missing_ok=True)
        for name, sound, file_format, language in PLAYING.findall(text):
            played.append((sound, file_format, language))
            played.by_channel.setdefault(name, set()).add(sound)


def test_waiting_callers_hear_their_place_in_mandarin(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    sandbox = _sandbox()
    # The only psych counsellor is talking to a first caller; two more wait their turn.
    with heard(sandbox) as played, softphone(workdir, user="c1002",
                                             password=counsellors["c1002"]):
        talking = Caller(workdir, caller=caller_number(), keys="1", hold_ms=30000).start()
        time.sleep(9)
        next_one = Caller(workdir, caller=caller_number(), keys="1", hold_ms=16000).start()
        time.sleep(3)
        second = Caller(workdir, caller=caller_number(), keys="1", hold_ms=14000).start()
        results = [caller.wait() for caller in (talking, next_one, second)]
    assert all(result.ok for result in results), [r.errors[-1000:] for r in results]
    sounds = {sound for sound, _format, _language in played}
    # First in line: "你是下一位，咨询老师马上就来。" then "谢谢你的耐心等待。"
    assert {"queue-youarenext", "queue-thankyou"} <= sounds
    # Second: "你现在排在第 | 二 | 位，请稍候。"
    assert {"queue-thereare", "digits/2", "queue-callswaiting"} <= sounds
    _all_mandarin(sandbox, played)


def test_a_caller_in_crisis_hears_someone_is_coming(
        backend: Backend, counsellors: dict[str, str], workdir: Path) -> None:
    sandbox = _sandbox()
    with heard(sandbox) as played, softphone(workdir, user="c1001",
                                             password=counsellors["c1001"], ring_ms=60000):
        result = Caller(workdir, caller=caller_number(), keys="3", hold_ms=30000).run()
    assert result.ok, result.errors[-1000:]
    sounds = {sound for sound, _format, _language in played}
    assert "hotline/crisis-hold" in sounds
    # No queue position for a caller in crisis (on the caller's channel: the duty officer's
    # phone, rung for the crisis alert meanwhile, hears the caller's number in digits).
    [caller] = [sounds for sounds in played.by_channel.values() if "hotline/crisis-hold" in sounds]
    assert not {s for s in caller if s.startswith(("queue-", "digits/"))}
    _all_mandarin(sandbox, played)


def _all_mandarin(sandbox: AsteriskSandbox, played: list[tuple[str, str, str]]) -> None:
    assert played, "nothing was played (is verbose logging working?)"
    for sound, file_format, language in played:
        assert language == "zh", (sound, language)
        # Our files are 8 kHz WAV (slin); the packaged English ones are GSM.
        assert file_format == "slin", (sound, file_format)
        assert sandbox.host_path(f"/usr/share/asterisk/sounds/zh/{sound}.wav").is_file(), sound

