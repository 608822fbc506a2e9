"""Pure parts of the Asterisk sandbox and the prompt builder (no chroot, no Asterisk)."""

from __future__ import annotations

import json
import math
import struct
import wave
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from hotline.asterisk import prompts
from hotline.asterisk.sandbox import (
    CARRIER_MEDIA_PORT,
    CARRIER_SCENARIO,
    HOTLINE_INCLUDES,
    AsteriskSandbox,
    SandboxError,
    base_config_names,
    build_spec,
    chroot_path,
    hosts_file,
    hotline_files,
    log_problem_lines,
    mounts_under,
    parse_uptime,
    parse_version,
    render_base_config,
)
from hotline.config import AmiSettings, AsteriskSettings

QUIET = Console(quiet=True)


def _base(host: str = "127.0.0.1", port: int = 5038) -> dict[str, str]:
    return render_base_config(settings=AsteriskSettings(), ami=AmiSettings(host=host, port=port))


def _active_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith(";")]


# -- base configuration --------------------------------------------------------------------


def test_every_hotline_include_is_included_by_its_base_file() -> None:
    base = _base()
    for name in HOTLINE_INCLUDES:
        assert name in base, name
        assert f"#include hotline/{name}" in _active_lines(base[name]), name


def test_base_has_the_core_files_asterisk_needs_to_start_cleanly() -> None:
    names = set(base_config_names())
    assert {
        "asterisk.conf",
        "modules.conf",
        "logger.conf",
        "cdr.conf",
        "cel.conf",
        "rtp.conf",
        "indications.conf",
        "musiconhold.conf",
        "stasis.conf",
        "ccss.conf",
        "udptl.conf",
        "acl.conf",
        "pjproject.conf",
    } <= names


def test_manager_binds_where_the_settings_say() -> None:
    manager = _active_lines(_base(host="127.0.0.1", port=15038)["manager.conf"])
    assert "[general]" in manager
    assert "enabled = yes" in manager
    assert "bindaddr = 127.0.0.1" in manager
    assert "port = 15038" in manager
    # the general section comes before the rendered users
    assert manager.index("[general]") < manager.index("#include hotline/manager.conf")


def test_queues_general_section_then_include() -> None:
    queues = _active_lines(_base()["queues.conf"])
    assert queues[0] == "[general]"
    assert "persistentmembers = no" in queues
    assert queues[-1] == "#include hotline/queues.conf"


def test_cdr_and_cel_are_disabled() -> None:
    base = _base()
    assert "enable = no" in _active_lines(base["cdr.conf"])
    assert "enable = no" in _active_lines(base["cel.conf"])


def test_rtp_range_and_chinese_tones() -> None:
    base = _base()
    assert {"rtpstart = 10000", "rtpend = 20000"} <= set(_active_lines(base["rtp.conf"]))
    tones = _active_lines(base["indications.conf"])
    assert "country = cn" in tones and "[cn]" in tones


def test_asterisk_conf_runs_as_root_and_speaks_the_prompt_language() -> None:
    settings = AsteriskSettings(sounds_language="zh")
    text = render_base_config(settings=settings, ami=AmiSettings())["asterisk.conf"]
    lines = _active_lines(text)
    assert "defaultlanguage = zh" in lines
    assert not any(line.startswith(("runuser", "rungroup")) for line in lines)
    assert not any(line.startswith("[directories]") for line in lines)


def test_modules_keep_what_the_hotline_needs() -> None:
    lines = _active_lines(_base()["modules.conf"])
    assert "autoload = yes" in lines
    noloaded = {line.split("=>", 1)[1].strip() for line in lines if line.startswith("noload")}
    needed = {
        "res_pjsip.so",
        "chan_pjsip.so",
        "app_queue.so",
        "app_confbridge.so",
        "app_voicemail.so",
        "app_mixmonitor.so",
        "app_record.so",
        "app_chanspy.so",
        "app_audiosocket.so",
        "res_agi.so",
        "format_wav.so",
        "format_gsm.so",
        "format_sln.so",
        "res_musiconhold.so",
        "app_read.so",
        "app_playback.so",
        "app_dial.so",
        "app_stack.so",
        "pbx_config.so",
        "app_amd.so",
        "codec_alaw.so",
        "codec_ulaw.so",
    }
    assert not needed & noloaded
    # the ODBC twin of app_voicemail registers the same applications and fails loudly
    assert "app_voicemail_odbc.so" in noloaded


def test_full_log_is_optional() -> None:
    settings, ami = AsteriskSettings(), AmiSettings()
    off = _active_lines(render_base_config(settings=settings, ami=ami)["logger.conf"])
    on = _active_lines(render_base_config(settings=settings, ami=ami, full_log=True)["logger.conf"])
    assert any(line.startswith("messages.log =>") for line in off)
    assert not any(line.startswith("full =>") for line in off)
    assert any(line.startswith("full =>") for line in on)


def test_hotline_files_fill_missing_includes_and_keep_extras() -> None:
    files = hotline_files({"pjsip.conf": "[t]\ntype=transport\n", "ivr-extra.conf": "x\n"})
    assert files["pjsip.conf"] == "[t]\ntype=transport\n"
    assert files["ivr-extra.conf"] == "x\n"
    for name in HOTLINE_INCLUDES:
        assert name in files


@pytest.mark.parametrize("name", ["", "../asterisk.conf", "sub/x.conf", ".hidden"])
def test_hotline_files_refuse_paths(name: str) -> None:
    with pytest.raises(ValueError):
        hotline_files({name: ""})


# -- build bookkeeping ---------------------------------------------------------------------


def test_build_spec_changes_with_the_package_set_only_in_content() -> None:
    settings = AsteriskSettings()
    assert build_spec(settings, ["b", "a"]) == build_spec(settings, ["a", "b", "a"])
    assert build_spec(settings, ["a"]) != build_spec(settings, ["a", "c"])
    other = AsteriskSettings(debian_suite="trixie")
    assert build_spec(settings, ["a"]) != build_spec(other, ["a"])


def _fake_root(tmp_path: Path, settings: AsteriskSettings, packages: list[str]) -> Path:
    root = Path(settings.chroot_dir)
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/asterisk").write_text("")
    (root / ".hotline-sandbox").mkdir()
    (root / ".hotline-sandbox/build.json").write_text(json.dumps(build_spec(settings, packages)))
    return root


def _sandbox(tmp_path: Path, **kwargs: object) -> AsteriskSandbox:
    settings = AsteriskSettings(chroot_dir=tmp_path / "chroot")
    return AsteriskSandbox(
        settings=settings,
        ami=AmiSettings(),
        var_dir=tmp_path / "var",
        console=QUIET,
        **kwargs,  # type: ignore[arg-type]
    )


def test_is_built_needs_a_matching_marker(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path)
    assert not sandbox.is_built()
    _fake_root(tmp_path, sandbox.settings, list(sandbox.packages))
    assert sandbox.is_built()
    # another package set means the chroot must be brought up to date
    assert not _sandbox(tmp_path, extra_packages=["python3-venv"]).is_built()
    # a half-built chroot has no finished marker
    (sandbox.root / ".hotline-sandbox/build.json").unlink()
    assert not sandbox.is_built()


def test_install_config_writes_base_and_includes(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path)
    root = _fake_root(tmp_path, sandbox.settings, list(sandbox.packages))
    etc = root / "etc/asterisk"
    etc.mkdir(parents=True)
    (etc / "iax.conf").write_text("; package sample\n")
    (etc / "hotline").mkdir()
    (etc / "hotline/old.conf").write_text("stale\n")

    sandbox.install_config({"extensions.conf": "[hotline-inbound]\n"})

    assert (etc / "hotline/extensions.conf").read_text() == "[hotline-inbound]\n"
    assert (etc / "hotline/pjsip.conf").exists()
    assert not (etc / "hotline/old.conf").exists()
    assert not (etc / "iax.conf").exists()
    assert (root / "etc/asterisk.dist/iax.conf").read_text() == "; package sample\n"
    assert "#include hotline/extensions.conf" in (etc / "extensions.conf").read_text()
    assert sorted(p.name for p in etc.iterdir() if p.is_file()) == base_config_names()


def test_install_config_needs_a_built_sandbox(tmp_path: Path) -> None:
    with pytest.raises(SandboxError):
        _sandbox(tmp_path).install_config({})


def test_hosts_file_maps_the_hostname() -> None:
    text = hosts_file("vm")
    assert "127.0.0.1\tlocalhost" in text
    assert "127.0.1.1\tvm" in text
    assert "127.0.1.1" not in hosts_file("localhost")


def test_chroot_path_reroots_absolute_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "run/asterisk").mkdir(parents=True)
    (root / "var").mkdir()
    (root / "var/run").symlink_to("/run")
    (root / "usr/share").mkdir(parents=True)
    (root / "usr/share/sounds").symlink_to("../../var/lib/sounds")
    assert chroot_path(root, "/var/run/asterisk") == root / "run/asterisk"
    assert chroot_path(root, "/usr/share/sounds/zh") == root / "var/lib/sounds/zh"
    assert chroot_path(root, "/../../etc") == root / "etc"


def test_mounts_under_finds_only_the_chroot_deepest_first() -> None:
    mountinfo = "\n".join(
        [
            "22 1 0:21 / / rw - ext4 /dev/vda rw",
            "42 27 0:39 / /srv/my\\040root/proc rw - proc proc rw",
            "43 27 0:6 / /srv/my\\040root/dev rw - devtmpfs devtmpfs rw",
            "44 43 0:7 / /srv/my\\040root/dev/pts rw - devpts devpts rw",
            "45 27 0:8 / /srv/my\\040rootless rw - tmpfs tmpfs rw",
        ]
    )
    found = mounts_under(Path("/srv/my root"), mountinfo)
    assert found[0] == Path("/srv/my root/dev/pts")
    assert set(found) == {
        Path("/srv/my root/proc"),
        Path("/srv/my root/dev"),
        Path("/srv/my root/dev/pts"),
    }


def test_log_problem_lines() -> None:
    text = "\n".join(
        [
            "[2026-01-01 00:00:00.000] NOTICE[1] cdr.c: CDR logging disabled.",
            "[2026-01-01 00:00:00.001] WARNING[1] loader.c: Some modules failed",
            "[2026-01-01 00:00:00.002] ERROR[1] config_options.c: Unable to load config",
            "[2026-01-01 00:00:00.003] VERBOSE[2][C-1] pbx.c: Executing ERROR[x]",
        ]
    )
    assert len(log_problem_lines(text)) == 2
    assert log_problem_lines(text, warnings=False) == [
        "[2026-01-01 00:00:00.002] ERROR[1] config_options.c: Unable to load config"
    ]


def test_log_problems_reads_only_since_the_mark(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path)
    log = sandbox.messages_log
    log.parent.mkdir(parents=True)
    log.write_text("[t] ERROR[1] old.c: before the start\n")
    sandbox._mark_log()
    assert sandbox.log_problems() == []
    with log.open("a") as handle:
        handle.write("[t] WARNING[2] new.c: after the start\n")
    assert sandbox.log_problems() == ["[t] WARNING[2] new.c: after the start"]


def test_parse_cli_output() -> None:
    version = "Asterisk 22.10.1+dfsg+~cs6.17.60671434-1 built by nobody @ buildd on a x86_64"
    assert parse_version(version) == "22.10.1+dfsg+~cs6.17.60671434-1"
    assert parse_version("") is None
    uptime = "System uptime: 1 minute, 5 seconds\nLast reload: 3 seconds\n"
    assert parse_uptime(uptime) == "1 minute, 5 seconds"


# -- the simulated carrier -----------------------------------------------------------------


def test_carrier_scenario_answers_plays_and_hangs_up_within_five_minutes() -> None:
    scenario = ET.parse(CARRIER_SCENARIO).getroot()
    recvs = scenario.findall("recv")
    assert any(r.get("request") == "INVITE" and r.get("optional") is None for r in recvs)
    sends = [s.text or "" for s in scenario.findall("send")]
    assert any("SIP/2.0 180 Ringing" in s for s in sends)
    assert any("SIP/2.0 200 OK" in s and "telephone-event" in s and "PCMA" in s for s in sends)
    assert any(s.strip().startswith("BYE ") for s in sends)
    execs = [e.get("play_pcap_audio") for e in scenario.iter("exec")]
    assert any(path and path.endswith(".pcap") for path in execs)
    timeouts = [int(r.get("timeout", "0")) for r in recvs if r.get("request") == "BYE"]
    assert timeouts and all(0 < t <= 300_000 for t in timeouts)


def test_carrier_command_logs_messages_beside_the_chroot(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path)
    command = sandbox.carrier_command()
    assert command[0] == "sipp"
    assert command[command.index("-i") + 1] == "127.0.0.2"
    assert command[command.index("-p") + 1] == "5070"
    assert command[command.index("-mp") + 1] == str(CARRIER_MEDIA_PORT)
    assert "-trace_msg" in command
    assert command[command.index("-message_file") + 1] == str(sandbox.carrier_log)
    assert sandbox.carrier_log == tmp_path / "chroot-state/log/carrier-messages.log"


def test_sandbox_paths_live_in_the_chroot(tmp_path: Path) -> None:
    sandbox = _sandbox(tmp_path)
    assert sandbox.sounds_dir == tmp_path / "chroot/usr/share/asterisk/sounds"
    assert sandbox.spool_dir == tmp_path / "chroot/var/spool/asterisk"


# -- prompts -------------------------------------------------------------------------------


def test_prompt_texts() -> None:
    assert set(prompts.PROMPTS) == {
        "welcome",
        "menu",
        "invalid",
        "connecting",
        "crisis-connecting",
        "please-hold",
        "oncall",
    }
    assert "请按3" in prompts.PROMPTS["menu"]


def test_phone_numbers_are_spoken_digit_by_digit() -> None:
    assert prompts.spoken_text("这里是12355青少年服务台") == "这里是幺二三五五青少年服务台"
    # a single menu digit stays as it is
    assert prompts.spoken_text("请按1，请按0") == "请按1，请按0"


def test_fingerprint_follows_text_voice_and_rate() -> None:
    base = prompts.prompt_fingerprint("你好")
    assert base == prompts.prompt_fingerprint("你好")
    assert base != prompts.prompt_fingerprint("您好")
    assert base != prompts.prompt_fingerprint("你好", voice="cmn")
    assert base != prompts.prompt_fingerprint("你好", rate=150)


def test_stale_prompts() -> None:
    texts = {"a": "一", "b": "二", "c": "三"}
    manifest = {
        "a": prompts.prompt_fingerprint("一"),
        "b": prompts.prompt_fingerprint("旧的"),
        "c": prompts.prompt_fingerprint("三"),
    }
    assert prompts.stale_prompts(texts, manifest, {"a", "b"}) == ["b", "c"]
    assert prompts.stale_prompts(texts, manifest, {"a", "b", "c"}) == ["b"]
    assert prompts.stale_prompts(texts, manifest, {"a", "b", "c"}, force=True) == ["a", "b", "c"]


def test_manifest_round_trip(tmp_path: Path) -> None:
    assert prompts.read_manifest(tmp_path) == {}
    prompts.write_manifest(tmp_path, {"menu": "abc"})
    assert prompts.read_manifest(tmp_path) == {"menu": "abc"}
    (tmp_path / prompts.MANIFEST_NAME).write_text("not json")
    assert prompts.read_manifest(tmp_path) == {}


def test_espeak_command_uses_the_pinyin_voice() -> None:
    command = prompts.espeak_command("拨打12355", Path("/tmp/x.wav"))
    assert command[:3] == ["espeak-ng", "-v", "cmn-latn-pinyin"]
    assert command[-1] == "拨打幺二三五五"


def _tone(path: Path, *, rate: int = 22050, seconds: float = 0.5) -> None:
    frames = bytearray()
    silence = int(rate * 0.3)
    for i in range(int(rate * seconds) + 2 * silence):
        inside = silence <= i < silence + int(rate * seconds)
        value = int(8000 * math.sin(2 * math.pi * 440 * i / rate)) if inside else 0
        frames += struct.pack("<h", value)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(bytes(frames))


def test_conversion_gives_8khz_mono_16bit_and_trims_silence(tmp_path: Path) -> None:
    source, target = tmp_path / "in.wav", tmp_path / "out.wav"
    _tone(source)
    duration = prompts.convert_to_asterisk_wav(source, target)
    with wave.open(str(target), "rb") as handle:
        assert handle.getframerate() == 8000
        assert handle.getnchannels() == 1
        assert handle.getsampwidth() == 2
    assert 0.5 <= duration < 0.75  # 0.3 s of silence on each side trimmed to ~60 ms
    assert prompts.wav_duration(target) == pytest.approx(duration, abs=0.01)


def test_build_prompts_without_espeak_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prompts.shutil, "which", lambda _: None)
    with pytest.raises(prompts.PromptError, match="espeak-ng"):
        prompts.build_prompts(sounds_dir=tmp_path, console=QUIET)


def test_build_prompts_up_to_date_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = prompts.prompt_dir(tmp_path, "zh")
    directory.mkdir(parents=True)
    texts = {"welcome": "您好"}
    (directory / "welcome.wav").write_bytes(b"")
    prompts.write_manifest(directory, {"welcome": prompts.prompt_fingerprint("您好")})

    def no_espeak(*args: object, **kwargs: object) -> None:
        raise AssertionError("espeak-ng must not run")

    monkeypatch.setattr(prompts.subprocess, "run", no_espeak)
    paths = prompts.build_prompts(sounds_dir=tmp_path, prompts=texts, console=QUIET)
    assert paths == [directory / "welcome.wav"]
