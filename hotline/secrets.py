"""Secrets generated on first use and kept in var/secrets.toml (mode 0600), never committed."""

from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hotline.config import Settings


def secrets_path(var_dir: Path) -> Path:
    return var_dir / "secrets.toml"


def _read(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        return {key: str(value) for key, value in tomllib.load(handle).items()}


def _write(path: Path, values: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        for key, value in sorted(values.items()):
            handle.write(f'{key} = "{value}"\n')
    tmp.replace(path)


def generated_secret(var_dir: Path, name: str, nbytes: int = 24) -> str:
    """Return the named secret, generating and storing it the first time."""
    path = secrets_path(var_dir)
    values = _read(path)
    if name not in values:
        values[name] = secrets.token_urlsafe(nbytes)
        _write(path, values)
    return values[name]


def new_sip_secret() -> str:
    # Letters and digits only: softphones differ in which punctuation they accept.
    # 32 hex digits: 128 bits of entropy, out of reach of an online guessing attack.
    return secrets.token_hex(16)


def fill_generated_secrets(settings: Settings) -> Settings:
    if not settings.ami.secret:
        settings.ami.secret = generated_secret(settings.var_dir, "ami_secret")
    if not settings.ami.dialer_secret:
        settings.ami.dialer_secret = generated_secret(settings.var_dir, "dialer_ami_secret")
    if not settings.lockout.ami_secret:
        settings.lockout.ami_secret = generated_secret(settings.var_dir, "lockout_ami_secret")
    if not settings.webhook.secret:
        settings.webhook.secret = generated_secret(settings.var_dir, "webhook_secret", 32)
    return settings
