"""The hotline's Mandarin prompts, generated with espeak-ng for the sandbox and the demo.

Each prompt becomes ``<sounds_dir>/<language>/hotline/<name>.wav`` (8 kHz, mono, 16-bit), so
the dialplan plays it as ``Playback(hotline/<name>)`` on a channel whose language is
``zh``. A manifest next to the files records what each file was made from; a prompt is made
again only when its text, the voice or the conversion changed (or ``force``).

In production admins upload recorded prompts; these synthetic ones keep tests and the demo
self-contained.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

PROMPTS: dict[str, str] = {
    "welcome": "您好，这里是12355青少年服务台。",
    "menu": "心理咨询请按1，法律帮助请按2，如果你有危险或想伤害自己，请按3，人工服务请按0。",
    "invalid": "输入有误，请重新选择。",
    "connecting": "正在为您转接咨询员，请稍候。",
    "crisis-connecting": "请不要挂机，我们马上为您接通专业咨询员。",
    "please-hold": "咨询员正在通话中，请您耐心等待，我们会尽快为您接通。",
    "oncall": "正在为您转接值班人员，请稍候。",
}

#: Mandarin with Latin read as pinyin. Plain ``cmn`` in espeak-ng 1.51 (Debian 12) reads the
#: pinyin its dictionary produces as English words ("你好" sounds like "ni three hao three").
VOICE = "cmn-latn-pinyin"
#: Words per minute: faster than espeak-ng's 175 so the menu stays short.
RATE = 190
SAMPLE_RATE = 8000
#: Bump when the conversion changes, so every prompt is made again.
CONVERSION_VERSION = 2
MANIFEST_NAME = ".prompts.json"
#: espeak-ng speaks up to about 10 kHz; at 8 kHz everything above 3.4 kHz would fold back.
_LOWPASS_HZ = 3400
_LOWPASS_PASSES = 2
#: Silence kept at either end after trimming espeak-ng's own (the caller waits for the menu).
_EDGE_SILENCE_MS = 60


_DIGITS = "零幺二三四五六七八九"


class PromptError(RuntimeError):
    """The prompts could not be generated (espeak-ng missing or failing)."""


def prompt_dir(sounds_dir: Path, language: str = "zh") -> Path:
    return Path(sounds_dir) / language / "hotline"


def spoken_text(text: str) -> str:
    """The text as espeak-ng should say it: a number of 3+ digits is read digit by digit,
    the way Chinese speakers say phone numbers (12355 -> 幺二三五五), not as a quantity."""
    return re.sub(r"\d{3,}", lambda match: "".join(_DIGITS[int(d)] for d in match.group(0)), text)


def prompt_fingerprint(text: str, *, voice: str = VOICE, rate: int = RATE) -> str:
    """What a prompt file is made from; a different fingerprint means make it again."""
    source = json.dumps(
        {
            "text": spoken_text(text),
            "voice": voice,
            "rate": rate,
            "sample_rate": SAMPLE_RATE,
            "conversion": CONVERSION_VERSION,
        },
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def read_manifest(directory: Path) -> dict[str, str]:
    try:
        data = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(key): str(value) for key, value in data.items()}


def write_manifest(directory: Path, manifest: Mapping[str, str]) -> None:
    path = directory / MANIFEST_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(dict(manifest), ensure_ascii=False, indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    tmp.replace(path)


def stale_prompts(
    prompts: Mapping[str, str],
    manifest: Mapping[str, str],
    existing: set[str],
    *,
    voice: str = VOICE,
    rate: int = RATE,
    force: bool = False,
) -> list[str]:
    """Names of the prompts to make: missing files, changed fingerprints, or all if forced."""
    return [
        name
        for name, text in prompts.items()
        if force
        or name not in existing
        or manifest.get(name) != prompt_fingerprint(text, voice=voice, rate=rate)
    ]


def espeak_command(text: str, output: Path, *, voice: str = VOICE, rate: int = RATE) -> list[str]:
    return ["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(output), "--", spoken_text(text)]


def _audio_segment() -> Any:
    with warnings.catch_warnings():
        # pydub warns when ffmpeg is missing; WAV in and out needs no ffmpeg.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        from pydub import AudioSegment
    return AudioSegment


def convert_to_asterisk_wav(source: Path, target: Path) -> float:
    """Convert a WAV to 8 kHz mono 16-bit PCM for Asterisk; returns the duration in seconds."""
    audio_segment = _audio_segment()
    from pydub.effects import low_pass_filter

    audio = audio_segment.from_wav(str(source)).set_channels(1).set_sample_width(2)
    if audio.frame_rate > SAMPLE_RATE:
        for _ in range(_LOWPASS_PASSES):
            audio = low_pass_filter(audio, _LOWPASS_HZ)
    audio = _trim_silence(audio.set_frame_rate(SAMPLE_RATE))
    tmp = target.with_name(f".{target.name}.tmp")
    audio.export(str(tmp), format="wav")
    tmp.replace(target)
    return float(audio.duration_seconds)


def _trim_silence(audio: Any) -> Any:
    from pydub.silence import detect_leading_silence

    threshold = audio.dBFS - 40 if audio.dBFS != float("-inf") else -60.0
    start = detect_leading_silence(audio, silence_threshold=threshold)
    end = detect_leading_silence(audio.reverse(), silence_threshold=threshold)
    if start + end >= len(audio):
        return audio
    start = max(0, start - _EDGE_SILENCE_MS)
    end = max(0, end - _EDGE_SILENCE_MS)
    return audio[start : len(audio) - end]


def wav_duration(path: Path) -> float:
    """Seconds of audio in a WAV file."""
    import wave

    with wave.open(str(path), "rb") as handle:
        return handle.getnframes() / float(handle.getframerate())


def build_prompts(
    *,
    sounds_dir: Path,
    language: str = "zh",
    force: bool = False,
    console: Console | None = None,
    prompts: Mapping[str, str] | None = None,
    voice: str = VOICE,
    rate: int = RATE,
) -> list[Path]:
    """Make the prompts that are missing or changed; return the paths of all of them."""
    console = console or Console(stderr=True)
    prompts = PROMPTS if prompts is None else prompts
    directory = prompt_dir(sounds_dir, language)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(directory)
    existing = {path.stem for path in directory.glob("*.wav")}
    todo = stale_prompts(prompts, manifest, existing, voice=voice, rate=rate, force=force)
    paths = [directory / f"{name}.wav" for name in prompts]
    if not todo:
        console.print(f"[green]✓[/] {len(paths)} prompts up to date in {directory}")
        return paths
    if shutil.which("espeak-ng") is None:
        raise PromptError(
            "espeak-ng is not installed; it makes the Mandarin prompts (apt-get install espeak-ng)"
        )
    progress = Progress(
        TextColumn("[bold]prompts[/]"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[detail]}[/]"),
        console=console,
    )
    with progress, tempfile.TemporaryDirectory(prefix="hotline-prompts-") as tmpdir:
        task = progress.add_task("", total=len(todo), detail="")
        for name in todo:
            progress.update(task, detail=name)
            raw = Path(tmpdir) / f"{name}.wav"
            command = espeak_command(prompts[name], raw, voice=voice, rate=rate)
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0 or not raw.exists():
                raise PromptError(
                    f"espeak-ng failed for prompt {name!r} ({result.returncode}): "
                    f"{result.stderr.strip()}"
                )
            convert_to_asterisk_wav(raw, directory / f"{name}.wav")
            manifest[name] = prompt_fingerprint(prompts[name], voice=voice, rate=rate)
            write_manifest(directory, manifest)
            progress.advance(task)
        progress.update(task, detail="done")
    console.print(f"[green]✓[/] made {len(todo)} of {len(paths)} prompts in {directory}")
    return paths
