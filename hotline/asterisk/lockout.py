"""Lock-out of addresses that keep failing SIP authentication: fail2ban + nftables.

Why fail2ban and not Asterisk's own ACLs: PJSIP can refuse a source address (a
``type=acl`` section, an endpoint's ``acl=``/``deny=``, named ACLs of acl.conf), but it
reads them from configuration only, so every new lock-out needs a reload — the AMI
``Reload`` action, which needs the ``system`` or ``config`` write class the backend's AMI
user must never have. fail2ban instead reads Asterisk's security log (the events
``InvalidPassword``, ``ChallengeResponseFailed``, ``InvalidAccountID``, ``FailedACL``),
counts failures per address and drops the address's packets to the SIP ports in the
kernel (an nftables set in a table of its own) for ``lockout.ban_seconds``; then it lifts
the lock-out itself. It runs on the Asterisk host with the one privilege that needs
(the firewall), Asterisk needs no reload, and the backend keeps its least-privileged AMI
user. Each ban and each end of a ban reaches the backend as an AMI UserEvent sent by
``lockout_notify.py`` with a second AMI user that may only send UserEvents
(``ami_listener.lockouts`` writes the audit entry and the alert).

This module writes fail2ban's configuration (a directory of its own: the host's
/etc/fail2ban is left alone) and, for the sandbox, runs one fail2ban server beside the
chroot (``<chroot>-state/fail2ban``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hotline.config import Settings

JAIL = "hotline-sip"
FILTER = "hotline-asterisk-security"
NFT_TABLE = "hotline12355"
NOTIFY_SCRIPT = Path(__file__).resolve().with_name("lockout_notify.py")
#: Security events that count as a failed attempt.
FAILURE_EVENTS = ("InvalidPassword", "ChallengeResponseFailed", "InvalidAccountID", "FailedACL")


class LockoutError(RuntimeError):
    """fail2ban could not be configured, started or asked."""


def ignore_list(settings: Settings) -> list[str]:
    """Addresses never locked out: the configured ones and the carrier trunk."""
    entries: list[str] = []
    for value in [*settings.lockout.ignore, settings.asterisk.carrier_address]:
        network = str(ipaddress.ip_network(value, strict=False))
        if network not in entries:
            entries.append(network)
    return entries


def filter_conf() -> str:
    events = "|".join(FAILURE_EVENTS)
    regex = (f'SECURITY\\[\\d+\\][^:]*: SecurityEvent="(?:{events})",'
             '.*RemoteAddress="IPV[46]/[A-Za-z]+/<ADDR>/\\d+"')
    return f"""# hotline12355: failed SIP sign-ins in Asterisk's security log (res_security_log),
# e.g. SecurityEvent="ChallengeResponseFailed",...,RemoteAddress="IPV4/UDP/203.0.113.9/5060"
[Definition]
failregex = {regex}
ignoreregex =
datepattern = ^\\[%%Y-%%m-%%d %%H:%%M:%%S(?:\\.%%f)?\\]
"""


def nftables_action_conf() -> str:
    # One table of our own (inet family): a set of locked-out addresses per IP family and a
    # chain that drops what they send to the SIP ports. Nothing else on the host is touched.
    return """# hotline12355: drop SIP from locked-out addresses (nftables table of its own)
[Definition]
actionstart = nft list table inet <table> >/dev/null 2>&1 && nft delete table inet <table>
              nft add table inet <table>
              nft 'add set inet <table> lockout4 { type ipv4_addr; }'
              nft 'add set inet <table> lockout6 { type ipv6_addr; }'
              nft 'add chain inet <table> input { type filter hook input priority -1; }'
              nft 'add rule inet <table> input ip saddr @lockout4 udp dport { <ports> } drop'
              nft 'add rule inet <table> input ip saddr @lockout4 tcp dport { <ports> } drop'
              nft 'add rule inet <table> input ip6 saddr @lockout6 udp dport { <ports> } drop'
              nft 'add rule inet <table> input ip6 saddr @lockout6 tcp dport { <ports> } drop'
actionstop = nft delete table inet <table>
actioncheck = nft list chain inet <table> input >/dev/null
actionban = nft 'add element inet <table> <addr_set> { <ip> }'
actionunban = nft 'delete element inet <table> <addr_set> { <ip> }'

[Init]
table = hotline12355
ports = 5060, 5061
addr_set = lockout4

[Init?family=inet6]
addr_set = lockout6
"""


def notify_action_conf() -> str:
    return """# hotline12355: tell the backend (AMI UserEvent) about each lock-out and its end
[Definition]
actionban = <python> -I <script> --config <config> ban <ip> <failures> <bantime>
actionunban = <python> -I <script> --config <config> unban <ip> 0 <bantime>

[Init]
python = python3
script = lockout_notify.py
config = notify.json
"""


def jail_conf(settings: Settings, *, security_log: str, notify_config: str,
              python: str = sys.executable) -> str:
    lockout = settings.lockout
    ports = f"{settings.asterisk.sip_port}, {settings.asterisk.tls_port}"
    return f"""# hotline12355: the SIP lock-out jail, written from the [lockout] settings.
[DEFAULT]
backend = polling
usedns = no
ignoreself = false
ignoreip = {" ".join(ignore_list(settings))}

[{JAIL}]
enabled = true
filter = {FILTER}
logpath = {security_log}
maxretry = {lockout.max_failures}
findtime = {lockout.find_seconds}
bantime = {lockout.ban_seconds}
action = hotline-nftables[table={NFT_TABLE}, ports="{ports}"]
         hotline-notify[python="{python}", script="{NOTIFY_SCRIPT}", config="{notify_config}"]
"""


def fail2ban_conf(*, socket_path: Path, pid_path: Path, log_path: Path) -> str:
    return f"""# hotline12355's own fail2ban server (the host's /etc/fail2ban is not used)
[Definition]
loglevel = INFO
logtarget = {log_path}
socket = {socket_path}
pidfile = {pid_path}
dbfile = :memory:
"""


def notify_config(settings: Settings) -> str:
    return json.dumps({"host": settings.ami.host, "port": settings.ami.port,
                       "username": settings.lockout.ami_username,
                       "secret": settings.lockout.ami_secret, "jail": JAIL}, indent=2) + "\n"


def render_fail2ban(settings: Settings, *, directory: Path, security_log: str,
                    run_dir: Path, log_path: Path) -> dict[str, str]:
    """fail2ban's configuration directory: relative path -> text."""
    notify_path = directory / "notify.json"
    return {
        "fail2ban.conf": fail2ban_conf(socket_path=run_dir / "fail2ban.sock",
                                       pid_path=run_dir / "fail2ban.pid", log_path=log_path),
        "jail.conf": jail_conf(settings, security_log=security_log,
                               notify_config=str(notify_path)),
        f"filter.d/{FILTER}.conf": filter_conf(),
        "action.d/hotline-nftables.conf": nftables_action_conf(),
        "action.d/hotline-notify.conf": notify_action_conf(),
        "notify.json": notify_config(settings),
    }


@dataclass(frozen=True)
class Ban:
    address: str


_BANNED = re.compile(r"Banned IP list:\s*(.*)$", re.MULTILINE)


def parse_banned(status: str) -> list[str]:
    """Addresses of ``fail2ban-client status <jail>``."""
    match = _BANNED.search(status)
    return match.group(1).split() if match else []


class LockoutGuard:
    """The sandbox's fail2ban server: configured from Settings, beside the chroot."""

    def __init__(self, settings: Settings, *, state_dir: Path, security_log: Path) -> None:
        self.settings = settings
        self.base = state_dir / "fail2ban"
        self.conf_dir = self.base / "conf"
        self.run_dir = self.base / "run"
        self.log_path = self.base / "fail2ban.log"
        self.security_log = security_log

    @property
    def socket_path(self) -> Path:
        return self.run_dir / "fail2ban.sock"

    @staticmethod
    def available() -> bool:
        return all(shutil.which(tool) for tool in ("fail2ban-client", "fail2ban-server", "nft"))

    def _client(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["fail2ban-client", "-c", str(self.conf_dir),
                               "-s", str(self.socket_path), *args],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def install(self) -> bool:
        """Write the configuration; True when something changed."""
        files = render_fail2ban(self.settings, directory=self.conf_dir,
                                security_log=str(self.security_log), run_dir=self.run_dir,
                                log_path=self.log_path)
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o700)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        changed = False
        for name, text in files.items():
            path = self.conf_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                if path.read_text(encoding="utf-8") == text:
                    continue
            tmp = path.with_name(f".{path.name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            tmp.replace(path)
            changed = True
        # fail2ban refuses a jail whose log does not exist yet; Asterisk appends to it.
        self.security_log.parent.mkdir(parents=True, exist_ok=True)
        self.security_log.touch(exist_ok=True)
        return changed

    def running(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            return self._client("ping", timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def start(self) -> str:
        """Start (or reload with a changed configuration); returns what was done."""
        if not self.available():
            raise LockoutError("fail2ban or nftables is not installed "
                               "(apt-get install fail2ban nftables)")
        changed = self.install()
        if self.running():
            if not changed:
                return "running"
            result = self._client("reload")
            if result.returncode != 0:
                raise LockoutError(f"fail2ban reload failed: {result.stderr or result.stdout}")
            self._wait_jail()
            return "reloaded"
        self.socket_path.unlink(missing_ok=True)
        result = self._client("-b", "start", timeout=60)
        if result.returncode != 0:
            raise LockoutError(f"fail2ban did not start: {result.stderr or result.stdout}")
        self._wait_jail()
        return "started"

    def _wait_jail(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                result = self._client("status", JAIL, timeout=10)
                if result.returncode == 0:
                    return
            time.sleep(0.2)
        raise LockoutError(f"fail2ban jail {JAIL} did not come up; see {self.log_path}")

    def stop(self) -> bool:
        if not self.running():
            return False
        self._client("stop")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.socket_path.exists():
            time.sleep(0.1)
        return True

    def banned(self) -> list[str]:
        result = self._client("status", JAIL, timeout=10)
        if result.returncode != 0:
            raise LockoutError(f"fail2ban status failed: {result.stderr or result.stdout}")
        return parse_banned(result.stdout)

    def unban(self, address: str) -> None:
        self._client("set", JAIL, "unbanip", str(ipaddress.ip_address(address)), timeout=10)


def write_fail2ban_dir(settings: Settings, output: Path, *, security_log: str) -> Mapping[str, str]:
    """For an operator: the same configuration, to run with
    ``fail2ban-client -c OUTPUT start`` on the Asterisk host."""
    files = render_fail2ban(settings, directory=output.resolve(), security_log=security_log,
                            run_dir=Path("/run/hotline12355-fail2ban"),
                            log_path=Path("/var/log/hotline12355-fail2ban.log"))
    for name, text in files.items():
        path = output / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
    return files
