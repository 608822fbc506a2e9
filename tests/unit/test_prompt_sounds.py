"""The Mandarin sound set: every sound Asterisk plays to a caller exists in zh."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
from rich.console import Console

from hotline.asterisk import prompts

QUIET = Console(quiet=True)

#: app_queue's default sound names (Asterisk 22, apps/app_queue.c init_queue and say_position).
APP_QUEUE_SOUNDS = {
    "queue-youarenext", "queue-thereare", "queue-callswaiting", "queue-quantity1",
    "queue-quantity2", "queue-holdtime", "queue-minutes", "queue-minute", "queue-seconds",
    "queue-thankyou", "queue-reporthold", "queue-periodic-announce",
}
#: ConfBridge's default user sounds (apps/confbridge/conf_config_parser.c).
CONFBRIDGE_DEFAULTS = {
    "conf-hasjoin", "conf-hasleft", "conf-kicked", "conf-muted", "conf-unmuted",
    "conf-onlyone", "conf-thereare", "conf-otherinparty", "conf-placeintoconf",
    "conf-waitforleader", "conf-leaderhasleft", "conf-getpin", "conf-invalidpin",
    "conf-locked", "conf-lockednow", "conf-unlockednow", "conf-errormenu",
    "conf-now-muted", "conf-now-unmuted", "conf-onlyperson", "confbridge-join",
    "confbridge-leave", "confbridge-conf-begin", "confbridge-binaural-on",
    "confbridge-binaural-off",
}
#: What VoiceMail() (leaving a message) and Record() play to a caller.
VOICEMAIL_CALLER = {
    "vm-intro", "vm-theperson", "vm-isunavail", "vm-isonphone", "beep", "vm-goodbye",
    "vm-msgsaved", "vm-review", "vm-torerecord", "vm-tocancel", "vm-star-cancel",
    "vm-mailboxfull", "auth-thankyou",
}


def say_number_zh(num: int) -> list[str]:
    """The files main/say.c's ast_say_number_full_zh plays for `num` (a port of its loop)."""
    if num == 0:
        return ["digits/0"]
    files: list[str] = []
    playh = playt = playz = 0
    last_length = 0
    while num or playh or playt or playz:
        if num < 0:
            files.append("digits/minus")
            num = -num
            continue
        if playz:
            files.append("digits/0")
            last_length = 0
            playz = 0
        elif playh:
            files.append("digits/hundred")
            playh = 0
        elif playt:
            files.append("digits/thousand")
            playt = 0
        elif num < 10:
            if last_length - len(str(num)) > 1 and last_length != 0:
                last_length = len(str(num))
                playz += 1
                continue
            files.append(f"digits/{num}")
            num = 0
        elif num < 100:
            if last_length - len(str(num)) > 1 and last_length != 0:
                last_length = len(str(num))
                playz += 1
                continue
            last_length = len(str(num))
            files.append(f"digits/{(num // 10) * 10}")
            num %= 10
        elif num < 1000:
            if last_length - len(str(num)) > 1 and last_length != 0:
                last_length = len(str(num))
                playz += 1
                continue
            files.append(f"digits/{num // 100}")
            playh += 1
            last_length = len(str(num))
            num -= (num // 100) * 100
        elif num < 10000:
            files.append(f"digits/{num // 1000}")
            playt += 1
            last_length = len(str(num))
            num -= (num // 1000) * 1000
        else:
            files.extend(say_number_zh(num // 10000))
            last_length = len(str(num))
            num -= (num // 10000) * 10000
            files.append("digits/wan")
    return files


def test_say_number_port_reads_like_chinese() -> None:
    text = {name: spec for name, spec in prompts.DIGIT_SOUNDS.items()}
    assert "".join(text[f] for f in say_number_zh(25)) == "二十五"
    assert "".join(text[f] for f in say_number_zh(3)) == "三"
    assert "".join(text[f] for f in say_number_zh(105)) == "一百零五"


def test_every_number_a_queue_can_say_has_a_mandarin_file() -> None:
    # Queue positions and hold-time minutes, and a margin.
    needed = {name for number in range(-5, 20000) for name in say_number_zh(number)}
    assert needed <= set(prompts.SYSTEM_SOUNDS)


def test_system_sounds_cover_queue_confbridge_and_voicemail() -> None:
    names = set(prompts.SYSTEM_SOUNDS)
    assert names >= APP_QUEUE_SOUNDS
    assert names >= CONFBRIDGE_DEFAULTS
    assert names >= VOICEMAIL_CALLER
    assert isinstance(prompts.SYSTEM_SOUNDS["beep"], prompts.Tone)


def test_builtin_prompts_name_every_hotline_sound() -> None:
    assert set(prompts.BUILTIN_PROMPTS) == {f"hotline/{n}" for n in prompts.HOTLINE_PROMPTS}
    for name in ("welcome", "menu", "invalid", "connecting", "crisis-connecting",
                 "please-hold", "oncall", "closed", "holiday", "night-menu", "selfhelp-menu",
                 "selfhelp-exam", "selfhelp-sleep", "selfhelp-breathing", "voicemail-greeting",
                 "voicemail-thanks", "forwarding", "survey-ask", "survey-thanks",
                 "survey-invalid", "queue-all-busy", "crisis-hold"):
        assert f"hotline/{name}" in prompts.BUILTIN_PROMPTS
    # The texts shown to administrators carry plain ellipses, not pause lengths.
    assert all("………" not in text for text in prompts.BUILTIN_PROMPTS.values())
    assert "吸气……" in prompts.BUILTIN_PROMPTS["hotline/selfhelp-breathing"]


def test_default_rules_reference_only_builtin_prompts() -> None:
    defaults = pytest.importorskip("routing.defaults")
    rules = pytest.importorskip("routing.rules")
    rule_set = defaults.default_rules()
    used = {p for node in rule_set.nodes.values() for p in rules.node_prompts(node)}
    assert used <= set(prompts.BUILTIN_PROMPTS)


def test_menus_always_offer_the_crisis_option() -> None:
    for name in ("menu", "night-menu", "selfhelp-menu", "holiday"):
        assert "危险" in prompts.HOTLINE_PROMPTS[name], name
    assert "请按3" in prompts.HOTLINE_PROMPTS["night-menu"]


def test_english_versions_of_every_hotline_prompt() -> None:
    assert set(prompts.HOTLINE_PROMPTS_EN) == set(prompts.HOTLINE_PROMPTS)
    assert prompts.spoken_text("call 12355 now", "en") == "call 1 2 3 5 5 now"


def test_pauses_become_ssml_breaks() -> None:
    assert prompts.spoken_text("吸气……呼气") == '吸气<break time="1500ms"/>呼气'
    command = prompts.espeak_command("吸气……", Path("/tmp/x.wav"))
    assert "-m" in command and command[-1].endswith('<break time="1500ms"/>')
    assert "-m" not in prompts.espeak_command("你好", Path("/tmp/x.wav"))
    assert prompts.display_text("吸气…………呼气") == "吸气……呼气"


def test_groups_resolve_language_dirs(tmp_path: Path) -> None:
    groups = prompts.prompt_groups(tmp_path, language_dir=lambda lang: tmp_path / f"x-{lang}")
    dirs = {(g.language, g.directory) for g in groups}
    assert dirs == {("zh", tmp_path / "x-zh" / "hotline"), ("zh", tmp_path / "x-zh"),
                    ("en", tmp_path / "x-en" / "hotline")}
    english = next(g for g in groups if g.language == "en")
    assert english.voice == "en"


def test_tones_need_no_espeak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prompts.shutil, "which", lambda _: None)
    group = prompts.PromptGroup(tmp_path, {"beep": prompts.TONES["beep"],
                                           "confbridge-join": prompts.TONES["confbridge-join"]})
    paths = prompts.build_groups([group], console=QUIET)
    assert paths == [tmp_path / "beep.wav", tmp_path / "confbridge-join.wav"]
    with wave.open(str(paths[0]), "rb") as handle:
        assert (handle.getframerate(), handle.getnchannels(), handle.getsampwidth()) == (8000, 1, 2)
        assert handle.getnframes() == 2000  # 250 ms
    # A second run finds them up to date; a changed tone is made again.
    assert group.stale(force=False) == []
    changed = prompts.PromptGroup(tmp_path, {"beep": prompts.Tone(((800, 250),))})
    assert changed.stale(force=False) == ["beep"]


def test_sounds_in_subdirectories_are_tracked(tmp_path: Path) -> None:
    group = prompts.PromptGroup(tmp_path, {"digits/1": "一"})
    assert group.stale(force=False) == ["digits/1"]
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "1.wav").write_bytes(b"")
    prompts.write_manifest(tmp_path, {"digits/1": group.fingerprint("digits/1")})
    assert group.stale(force=False) == []
