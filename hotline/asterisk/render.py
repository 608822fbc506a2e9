"""Render asterisk_conf/ templates into include-able Asterisk configuration files.

The output is a mapping {file name: content} that the sandbox installs under
/etc/asterisk/hotline/, or that `hotline asterisk render --output DIR` writes for an
operator to `#include` into an existing Asterisk.
"""

from __future__ import annotations

import re
from pathlib import Path

import jinja2

from hotline.asterisk.plan import PbxPlan
from hotline.config import Settings

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "asterisk_conf"
RENDERED_FILES = ("pjsip.conf", "extensions.conf", "queues.conf", "queuerules.conf", "manager.conf",
                  "features.conf")

_UNSAFE = re.compile(r"[\r\n\x00;,\[\]\"<>|]")


def conf_text(value: str) -> str:
    """A display name safe inside an Asterisk config value (no comments, separators, newlines)."""
    return _UNSAFE.sub(" ", value).strip()


def dial_number(value: str) -> str:
    """A number dialled through the carrier: digits, + and * only."""
    cleaned = re.sub(r"[^0-9+*#]", "", value)
    if not cleaned:
        raise ValueError(f"not a dialable number: {value!r}")
    return cleaned


def feature_code(value: str) -> str:
    """An in-call feature code: 1 to 8 of 0-9 * #, and not a prefix clash left to chance."""
    if not re.fullmatch(r"[0-9*#]{1,8}", value):
        raise ValueError(f"not a feature code (1-8 of 0-9 * #): {value!r}")
    return value


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["conf_text"] = conf_text
    env.filters["dial_number"] = dial_number
    env.filters["feature_code"] = feature_code
    return env


def render(plan: PbxPlan, settings: Settings) -> dict[str, str]:
    env = _environment()
    context = {
        "plan": plan,
        "settings": settings,
        "agi_url": settings.agi.url.rstrip("/"),
        "classic_agi": settings.agi.classic_command,
        "voicemail_spool": settings.asterisk.voicemail_spool.rstrip("/"),
        "voicemail_max_seconds": settings.voicemail.max_seconds,
        "voicemail_silence_seconds": settings.voicemail.silence_seconds,
        "callback_ring_seconds": settings.voicemail.caller_ring_seconds,
        "queues": settings.queues,
        "ivr": settings.ivr,
        "crisis": settings.crisis,
    }
    return {name: env.get_template(f"{name}.j2").render(context) for name in RENDERED_FILES}
