"""The sandboxed Asterisk 22: a Debian sid chroot built, configured, started and stopped here.

Everything a fresh machine needs is done by this module (see REAL_ASTERISK.md):
``debootstrap`` a minimal sid, install Asterisk with apt, make the Asterisk directories
root's, map the hostname in the chroot's /etc/hosts, write a clean base configuration that
``#include``-s the rendered hotline files, and run Asterisk plus a simulated carrier (a sipp
UAS on its own loopback address that answers every outbound call).

The chroot is kept outside the repository and reused between runs; it is rebuilt only when
it is missing, half-built, or the wanted package set changed.

Configuration: /etc/asterisk holds only the base files of ``asterisk_conf/sandbox/`` (the
package's samples go to /etc/asterisk.dist; pristine ones are in
/usr/share/asterisk/conf/samples). Each base file that has rendered content includes
``hotline/<name>`` (``HOTLINE_INCLUDES``). Where the base already has a ``[general]``
section (queues, voicemail, features, confbridge, musiconhold), a rendered file extends it
with ``[general](+)`` rather than starting a second one.

The classic AGI fallback (``agi/classic.py``, pyst2) runs where Asterisk runs: every build
and every ``up`` makes sure the chroot has a virtual environment with pyst2 and pydantic
(sid's Python refuses system-wide pip installs), copies the current ``routing/`` and
``agi/classic.py`` into it and writes the script the dialplan calls
(``CLASSIC_WRAPPER``); see :meth:`AsteriskSandbox.install_classic_agi`.

Files of a running sandbox, beside the chroot in ``<chroot>-state/``: ``run`` (pid
files, log mark), ``log``
(asterisk-console.log, carrier-messages.log, sandbox-build.log); Asterisk's own log is
/var/log/asterisk/messages.log inside the chroot.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from hotline.config import AmiSettings, AsteriskSettings

#: Packages installed into the chroot (besides what debootstrap's minbase brings).
BASE_PACKAGES: tuple[str, ...] = (
    "asterisk",
    "asterisk-core-sounds-en-gsm",
    "asterisk-moh-opsound-gsm",
)

#: The classic AGI fallback inside the chroot: Debian packages it needs, its virtual
#: environment, its code (``lib/current`` → ``lib/<version>``), the script the dialplan
#: runs, what pip installs, and the rules snapshot directory it reads.
CLASSIC_PACKAGES: tuple[str, ...] = ("python3-venv",)
CLASSIC_PREFIX = "/opt/hotline12355"
CLASSIC_VENV = f"{CLASSIC_PREFIX}/venv"
CLASSIC_LIB = f"{CLASSIC_PREFIX}/lib"
CLASSIC_WRAPPER = f"{CLASSIC_PREFIX}/bin/hotline-ivr-classic"
CLASSIC_REQUIREMENTS: tuple[str, ...] = ("pyst2==0.5.1", "pydantic>=2.12,<3")
CLASSIC_SNAPSHOT_DIR = "/var/lib/hotline12355/rules"
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Files of ours under ``/etc/asterisk/hotline/`` that the base configuration includes;
#: install_config writes an empty one for every name it was not given.
HOTLINE_INCLUDES: tuple[str, ...] = (
    "pjsip.conf",
    "extensions.conf",
    "queues.conf",
    "queuerules.conf",
    "manager.conf",
    "voicemail.conf",
    "confbridge.conf",
    "musiconhold.conf",
    "features.conf",
)

#: Where the base templates and the carrier scenario live (``asterisk_conf/sandbox``).
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "asterisk_conf" / "sandbox"
CARRIER_SCENARIO = TEMPLATE_DIR / "carrier_uas.xml"
CARRIER_MEDIA_PORT = 36000

_BUILD_FORMAT = 1  # bump to force every existing chroot to rebuild
_STATE_DIR = ".hotline-sandbox"  # inside the chroot: build markers
_APT_OPTIONS = ("-o", "Acquire::Check-Valid-Until=false", "-o", "Acquire::Check-Date=false")
_CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "DEBCONF_NONINTERACTIVE_SEEN": "true",
}
_ASTERISK_DIRS = (
    "/etc/asterisk",
    "/var/lib/asterisk",
    "/var/spool/asterisk",
    "/var/log/asterisk",
    "/var/run/asterisk",
    "/var/cache/asterisk",
)
_PROBLEM_LINE = re.compile(r"\]\s+(ERROR|WARNING)\[")


class SandboxError(RuntimeError):
    """The sandbox could not be built, started or stopped; the message says why."""


@dataclass(frozen=True)
class SandboxStatus:
    built: bool
    running: bool
    version: str | None
    carrier_running: bool
    uptime: str | None


# --------------------------------------------------------------------------------------
# Pure helpers (unit-tested)
# --------------------------------------------------------------------------------------


def template_environment(template_dir: Path = TEMPLATE_DIR) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def base_config_names(template_dir: Path = TEMPLATE_DIR) -> list[str]:
    """Names of the base files under /etc/asterisk (``x.conf`` from ``x.conf`` or ``x.conf.j2``)."""
    names = set()
    for path in template_dir.iterdir():
        if path.name.endswith(".conf.j2"):
            names.add(path.name.removesuffix(".j2"))
        elif path.name.endswith(".conf"):
            names.add(path.name)
    return sorted(names)


def render_base_config(
    *,
    settings: AsteriskSettings,
    ami: AmiSettings,
    full_log: bool = False,
    template_dir: Path = TEMPLATE_DIR,
) -> dict[str, str]:
    """The base files of /etc/asterisk: file name -> text. Plain ``.conf`` files are copied."""
    env = template_environment(template_dir)
    context: dict[str, Any] = {
        "settings": settings,
        "ami": ami,
        "full_log": full_log,
        "language": settings.sounds_language,
        "hotline_includes": HOTLINE_INCLUDES,
    }
    rendered: dict[str, str] = {}
    for name in base_config_names(template_dir):
        source = template_dir / f"{name}.j2"
        if source.exists():
            rendered[name] = env.get_template(source.name).render(context)
        else:
            rendered[name] = (template_dir / name).read_text(encoding="utf-8")
    return rendered


def hotline_files(files: Mapping[str, str]) -> dict[str, str]:
    """The files for /etc/asterisk/hotline: those given plus an empty one per missing include."""
    result: dict[str, str] = {}
    for name, text in files.items():
        if not name or "/" in name or name.startswith(".") or "\0" in name:
            raise ValueError(f"not a plain configuration file name: {name!r}")
        result[name] = text
    for name in HOTLINE_INCLUDES:
        result.setdefault(name, f"; {name}: nothing rendered for the sandbox\n")
    return result


def build_spec(settings: AsteriskSettings, packages: Sequence[str]) -> dict[str, Any]:
    """What a finished build records; a different spec means the chroot must be (re)built."""
    return {
        "format": _BUILD_FORMAT,
        "suite": settings.debian_suite,
        "mirror": settings.debian_mirror,
        "packages": sorted(set(packages)),
    }


def hosts_file(hostname: str) -> str:
    lines = ["127.0.0.1\tlocalhost"]
    if hostname and hostname != "localhost":
        lines.append(f"127.0.1.1\t{hostname}")
    lines.append("::1\tlocalhost ip6-localhost ip6-loopback")
    return "\n".join(lines) + "\n"


def log_problem_lines(text: str, *, warnings: bool = True) -> list[str]:
    """ERROR (and WARNING) lines of an Asterisk log text."""
    wanted = {"ERROR", "WARNING"} if warnings else {"ERROR"}
    problems = []
    for line in text.splitlines():
        match = _PROBLEM_LINE.search(line)
        if match and match.group(1) in wanted:
            problems.append(line)
    return problems


def parse_version(output: str) -> str | None:
    """``Asterisk 22.6.0~dfsg-1 built by ...`` -> ``22.6.0~dfsg-1``."""
    match = re.search(r"Asterisk\s+(\S+)", output)
    return match.group(1) if match else None


def parse_uptime(output: str) -> str | None:
    match = re.search(r"System uptime:\s*(.+)", output)
    return match.group(1).strip() if match else None


def chroot_path(root: Path, inner: str) -> Path:
    """The host path of ``inner`` as seen inside the chroot ``root``.

    Symlinks are followed inside the chroot: an absolute link target is re-rooted at
    ``root`` (sid's /var/run -> /run must not land on the host's /run).
    """
    parts = [p for p in inner.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                raise SandboxError(f"too many symlinks resolving {inner} in {root}")
            target = os.readlink(candidate)
            target_parts = [p for p in target.split("/") if p]
            if target.startswith("/"):
                resolved = []
            parts = target_parts + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def mounts_under(root: Path, mountinfo: str) -> list[Path]:
    """Mount points at or below ``root`` in a /proc/self/mountinfo text, deepest first."""
    prefix = str(root).rstrip("/")
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def classic_code_files(repo: Path = REPO_ROOT) -> dict[str, bytes]:
    """What the classic AGI script imports from this checkout: relative path -> content.

    ``routing/`` whole (pure, pydantic only) and ``agi/classic.py`` with an ``agi``
    package of its own (the checkout's ``agi/__init__.py`` belongs to the FastAGI side).
    """
    files: dict[str, bytes] = {}
    for path in sorted((repo / "routing").glob("*.py")):
        files[f"routing/{path.name}"] = path.read_bytes()
    files["agi/__init__.py"] = b'"""The classic AGI fallback, copied from hotline12355."""\n'
    files["agi/classic.py"] = (repo / "agi" / "classic.py").read_bytes()
    return files


def classic_code_version(files: Mapping[str, bytes]) -> str:
    """A short digest of the code: the same code installs into the same directory."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:16]


def classic_wrapper(*, snapshot_dir: str = CLASSIC_SNAPSHOT_DIR) -> str:
    """The script Asterisk runs: the venv's Python, isolated (-I: no PYTHON* variables,
    no user site, no current directory on the path), SIGHUP ignored before any import."""
    return f'''#!{CLASSIC_VENV}/bin/python3 -I
"""hotline12355 classic AGI fallback, written by `hotline asterisk build`/`up` (edits are lost).

AGI({CLASSIC_WRAPPER},${{LINKEDID}},<site>,<base64 number>,<base64 name>,${{EXTEN}},<resume>)
"""
import signal

# pyst2 installs its SIGHUP handler only when the session starts: a hang-up before that
# must not kill the script half-way through its imports (it shows at the first command).
signal.signal(signal.SIGHUP, signal.SIG_IGN)

import sys  # noqa: E402

sys.path.insert(0, "{CLASSIC_LIB}/current")

from agi.classic import entry  # noqa: E402

entry(snapshot_dir={snapshot_dir!r})
'''


def classic_venv_spec(python: str) -> dict[str, Any]:
    """What a finished venv records; another Python or requirement set means a new venv."""
    return {"format": 1, "python": python, "requirements": list(CLASSIC_REQUIREMENTS)}


def host_ca_bundle(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The host's CA bundle for pip inside the chroot (a TLS-inspecting proxy's CA is in
    the host's bundle, not in the certifi bundle pip ships)."""
    candidates = [environ.get(name, "") for name in ("PIP_CERT", "SSL_CERT_FILE",
                                                    "REQUESTS_CA_BUNDLE")]
    candidates.append("/etc/ssl/certs/ca-certificates.crt")
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


# --------------------------------------------------------------------------------------
# Process helpers
# --------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()
    return bool(state) and state[0] not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _port_listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect((host if host not in ("0.0.0.0", "") else "127.0.0.1", port))
        except OSError:
            return False
        return True


def _udp_bound(address: str, port: int) -> bool:
    """Whether some socket is bound to UDP ``address:port`` (from /proc/net/udp)."""
    want_port = f"{port:04X}"
    want_addr = socket.inet_aton(address)[::-1].hex().upper()
    try:
        table = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    for row in table:
        local = row.split()[1]
        addr, _, hexport = local.partition(":")
        if hexport == want_port and addr in (want_addr, "00000000"):
            return True
    return False


# --------------------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------------------


class AsteriskSandbox:
    """Build and run the chroot Asterisk and the simulated carrier.

    All methods are idempotent and safe to call from several processes at once: the
    chroot is guarded by a lock file next to it.
    """

    def __init__(
        self,
        *,
        settings: AsteriskSettings,
        ami: AmiSettings,
        var_dir: Path,
        console: Console | None = None,
        extra_packages: Sequence[str] = (),
        full_log: bool = False,
        boot_timeout: float = 60.0,
    ) -> None:
        self.settings = settings
        self.ami = ami
        self.var_dir = Path(var_dir)
        self.console = console or Console(stderr=True)
        self.packages: tuple[str, ...] = tuple(dict.fromkeys((*BASE_PACKAGES, *extra_packages)))
        self.full_log = full_log
        self.boot_timeout = boot_timeout
        self.root = Path(settings.chroot_dir).expanduser().absolute()
        # Run state lives beside the chroot, not in a var dir: one Asterisk serves every
        # checkout and test run on the machine, and each must find the running one.
        state_dir = self.root.parent / f"{self.root.name}-state"
        self.run_dir = state_dir / "run"
        self.log_dir = state_dir / "log"
        self.carrier_log = self.log_dir / "carrier-messages.log"
        self.carrier_error_log = self.log_dir / "carrier-errors.log"
        self.build_log = self.log_dir / "sandbox-build.log"
        self.console_log = self.log_dir / "asterisk-console.log"
        self._asterisk_pidfile = self.run_dir / "asterisk.pid"
        self._carrier_pidfile = self.run_dir / "carrier.pid"
        self._log_mark = self.run_dir / "asterisk-log.mark"
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._lock_depth = 0
        self._lock_fd: int | None = None
        self._thread_lock = threading.RLock()
        self._classic_installed = False

    # -- paths -------------------------------------------------------------------------

    def host_path(self, inner: str) -> Path:
        """Host path of a path inside the chroot (symlinks resolved inside the chroot)."""
        return chroot_path(self.root, inner)

    @property
    def sounds_dir(self) -> Path:
        return self.host_path("/usr/share/asterisk/sounds")

    @property
    def spool_dir(self) -> Path:
        return self.host_path("/var/spool/asterisk")

    @property
    def etc_dir(self) -> Path:
        return self.host_path("/etc/asterisk")

    @property
    def messages_log(self) -> Path:
        return self.host_path("/var/log/asterisk/messages.log")

    @property
    def full_log_path(self) -> Path:
        return self.host_path("/var/log/asterisk/full")

    @property
    def _state_dir(self) -> Path:
        return self.root / _STATE_DIR

    # -- locking -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on the chroot, re-entrant within this object."""
        with self._thread_lock:
            if self._lock_depth == 0:
                lock_path = self.root.parent / f".{self.root.name}.lock"
                lock_path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._lock_fd = fd
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_fd is not None:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                    os.close(self._lock_fd)
                    self._lock_fd = None

    # -- build -------------------------------------------------------------------------

    def _spec(self) -> dict[str, Any]:
        return build_spec(self.settings, self.packages)

    def _read_marker(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self._state_dir / name).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _write_marker(self, name: str, data: Mapping[str, Any]) -> None:
        self._state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_dir / f"{name}.tmp"
        tmp.write_text(json.dumps(dict(data), indent=2, sort_keys=True) + "\n")
        tmp.replace(self._state_dir / name)

    def is_built(self) -> bool:
        marker = self._read_marker("build.json")
        if marker is None:
            return False
        recorded = {key: marker.get(key) for key in self._spec()}
        return recorded == self._spec() and (self.root / "usr/sbin/asterisk").exists()

    def _base_ok(self) -> bool:
        marker = self._read_marker("debootstrap.json")
        if marker is None or not (self.root / "usr/bin/apt-get").exists():
            return False
        spec = self._spec()
        return all(marker.get(key) == spec[key] for key in ("format", "suite", "mirror"))

    def build(self, *, force: bool = False) -> None:
        """Build the chroot if it is missing, half-built, outdated, or ``force`` is given."""
        with self._locked():
            if self.is_built() and not force:
                self.console.print(f"[green]✓[/] Asterisk sandbox already built at {self.root}")
                self.install_classic_agi()
                return
            started = time.monotonic()
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.build_log.write_text("")
            self._require_host_tools("debootstrap", "chroot", "mount", "umount")
            if self._asterisk_running() or self._carrier_pid() is not None:
                self.down()
            (self._state_dir / "build.json").unlink(missing_ok=True)
            with self._progress() as progress:
                if force or not self._base_ok():
                    self._remove_root(progress)
                    self._debootstrap(progress)
                self._prepare_root(progress)
                self._mount(quiet=True)
                try:
                    # A build interrupted while dpkg ran leaves packages half-configured.
                    self._run(
                        ["chroot", str(self.root), "dpkg", "--configure", "-a"],
                        step="dpkg --configure -a",
                    )
                    self._apt(progress, ["update"], "apt-get update")
                    # The classic AGI fallback's packages come in the same run (they are
                    # not part of the build spec: install_classic_agi adds them when missing).
                    wanted = tuple(dict.fromkeys((*self.packages, *CLASSIC_PACKAGES)))
                    self._apt(
                        progress,
                        ["install", "-y", "--no-install-recommends", *wanted],
                        "apt-get install " + " ".join(wanted),
                    )
                    self._apt(progress, ["clean"], "apt-get clean")
                finally:
                    self._unmount()
                self._fix_ownership(progress)
            version = self._package_version("asterisk")
            self._write_marker(
                "build.json",
                {**self._spec(), "asterisk_version": version, "built_at": time.time()},
            )
            elapsed = time.monotonic() - started
            self.console.print(
                f"[green]✓[/] Asterisk sandbox built at {self.root} "
                f"(asterisk {version or '?'}, {elapsed:.0f} s; log {self.build_log})"
            )
            self._classic_installed = False
            self.install_classic_agi()

    def _progress(self) -> Progress:
        return Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[step]}[/]"),
            BarColumn(bar_width=24),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[detail]}[/]"),
            console=self.console,
            transient=False,
        )

    def _require_host_tools(self, *tools: str) -> None:
        missing = [tool for tool in tools if shutil.which(tool) is None]
        if missing:
            raise SandboxError(
                f"missing host tools: {', '.join(missing)} (apt-get install debootstrap sip-tester)"
            )

    def _remove_root(self, progress: Progress) -> None:
        if not self.root.exists():
            return
        ours = (self.root / _STATE_DIR).is_dir() or not any(self.root.iterdir())
        if not ours or len(self.root.resolve().parts) < 3:
            raise SandboxError(
                f"refusing to delete {self.root}: it is not an Asterisk sandbox "
                f"(no {_STATE_DIR}); point asterisk.chroot_dir at a directory of its own"
            )
        task = progress.add_task("", step="remove old chroot", detail=str(self.root), total=1)
        self._kill_chroot_processes()
        self._unmount()
        remaining = self._mounts()
        if remaining:
            raise SandboxError(
                f"refusing to delete {self.root}: still mounted: "
                + ", ".join(str(p) for p in remaining)
            )
        # --one-file-system: never descend into a mount that appeared meanwhile.
        self._run(["rm", "-rf", "--one-file-system", str(self.root)], step="remove chroot")
        progress.update(task, completed=1)

    def _debootstrap(self, progress: Progress) -> None:
        task = progress.add_task(
            "", step=f"debootstrap {self.settings.debian_suite}", detail="starting", total=None
        )
        # Claim the directory first: an interrupted debootstrap is then known to be ours.
        self._state_dir.mkdir(parents=True, exist_ok=True)
        command = [
            "debootstrap",
            "--variant=minbase",
            self.settings.debian_suite,
            str(self.root),
        ]
        if self.settings.debian_mirror:
            command.append(self.settings.debian_mirror)
        counts = {"retrieved": 0, "unpacked": 0, "configured": 0}

        def on_line(line: str) -> None:
            text = line.removeprefix("I: ").strip()
            if text.startswith("Retrieving ") and not text.startswith("Retrieving Packages"):
                counts["retrieved"] += 1
            elif text.startswith("Unpacking ") and "required" not in text:
                counts["unpacked"] += 1
            elif text.startswith("Configuring ") and "required" not in text:
                counts["configured"] += 1
            phase = text.split(" ", 1)[0] if text else ""
            detail = (
                f"{phase.lower()}… retrieved {counts['retrieved']}, "
                f"unpacked {counts['unpacked']}, configured {counts['configured']}"
            )
            progress.update(task, detail=detail)

        self._stream(command, step="debootstrap", on_line=on_line)
        progress.update(task, total=1, completed=1, detail="base system installed")
        self._write_marker("debootstrap.json", {**self._spec(), "at": time.time()})

    def _prepare_root(self, progress: Progress) -> None:
        task = progress.add_task("", step="prepare chroot", detail="hosts, apt, policy", total=1)
        self._write_hosts()
        # No service may start inside the chroot while packages install.
        policy = self.root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        apt_conf = self.root / "etc/apt/apt.conf.d/99hotline-sandbox"
        apt_conf.write_text(
            'Acquire::Check-Valid-Until "false";\n'
            'Acquire::Check-Date "false";\n'
            'APT::Install-Recommends "false";\n'
            'Dpkg::Use-Pty "false";\n'
        )
        host_resolv = Path("/etc/resolv.conf")
        resolv = self.root / "etc/resolv.conf"
        if host_resolv.exists() and not resolv.is_symlink():
            with contextlib.suppress(OSError):
                shutil.copyfile(host_resolv, resolv)
        progress.update(task, completed=1)

    def _write_hosts(self) -> None:
        hosts = self.root / "etc/hosts"
        wanted = hosts_file(socket.gethostname())
        with contextlib.suppress(OSError):
            if hosts.read_text() == wanted:
                return
        if hosts.is_symlink():
            hosts.unlink()
        hosts.write_text(wanted)

    def _apt(self, progress: Progress, args: list[str], label: str) -> None:
        step = label if len(label) <= 40 else label[:39] + "…"
        task = progress.add_task("", step=step, detail="", total=100)
        read_fd, write_fd = os.pipe()
        command = [
            "chroot",
            str(self.root),
            "apt-get",
            *_APT_OPTIONS,
            "-o",
            f"APT::Status-Fd={write_fd}",
            *args,
        ]
        with self.build_log.open("ab") as log:
            log.write(f"\n$ {' '.join(command)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_CHROOT_ENV,
                pass_fds=(write_fd,),
            )
        os.close(write_fd)
        with os.fdopen(read_fd, "r", errors="replace") as status:
            for line in status:
                kind, _, rest = line.strip().partition(":")
                fields = rest.split(":", 2)
                if kind in ("dlstatus", "pmstatus") and len(fields) == 3:
                    with contextlib.suppress(ValueError):
                        share = float(fields[1])
                        # Downloads fill the first third of the bar, dpkg the rest.
                        done = share / 3 if kind == "dlstatus" else 33 + share * 2 / 3
                        progress.update(task, completed=done, detail=fields[2][:60])
        code = proc.wait()
        if code != 0:
            raise SandboxError(
                f"{label} failed with exit code {code}; end of {self.build_log}:\n"
                + _tail(self.build_log)
            )
        progress.update(task, completed=100, detail="done")

    def _fix_ownership(self, progress: Progress) -> None:
        task = progress.add_task("", step="chown asterisk dirs", detail="root:root", total=1)
        existing = [d for d in _ASTERISK_DIRS if self.host_path(d).exists()]
        if existing:
            self._run(
                ["chroot", str(self.root), "chown", "-R", "root:root", *existing],
                step="chown",
            )
        progress.update(task, completed=1)

    def _package_version(self, package: str) -> str | None:
        result = subprocess.run(
            ["chroot", str(self.root), "dpkg-query", "-W", "-f=${Version}", package],
            capture_output=True,
            text=True,
            env=_CHROOT_ENV,
            check=False,
        )
        return result.stdout.strip() or None if result.returncode == 0 else None

    def _run(self, command: list[str], *, step: str, timeout: float | None = None) -> str:
        with self.build_log.open("ab") as log:
            log.write(f"\n$ {' '.join(command)}\n".encode())
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                env=_CHROOT_ENV if command[0] == "chroot" else None,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"{step}: {' '.join(command)} timed out") from exc
        with self.build_log.open("a") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise SandboxError(
                f"{step} failed ({result.returncode}): {' '.join(command)}\n"
                + (result.stderr or result.stdout)[-2000:]
            )
        return result.stdout

    def _stream(self, command: list[str], *, step: str, on_line: Callable[[str], None],
                env: Mapping[str, str] | None = None) -> None:
        with self.build_log.open("ab") as log:
            log.write(f"\n$ {' '.join(command)}\n".encode())
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=dict(env) if env is not None else None,
        )
        assert proc.stdout is not None
        with self.build_log.open("a") as log:
            for line in proc.stdout:
                log.write(line)
                on_line(line)
        code = proc.wait()
        if code != 0:
            raise SandboxError(
                f"{step} failed with exit code {code}; end of {self.build_log}:\n"
                + _tail(self.build_log)
            )

    # -- configuration -----------------------------------------------------------------

    def install_config(self, files: Mapping[str, str]) -> None:
        """Write the base configuration and ``files`` into /etc/asterisk/hotline/.

        /etc/asterisk then holds exactly our base files (the package's samples are moved
        to /etc/asterisk.dist) and hotline/ exactly the given files plus empty includes.
        Apply to a running Asterisk with :meth:`reload`.
        """
        hotline = hotline_files(files)
        with self._locked():
            if not self.is_built():
                raise SandboxError(f"the sandbox at {self.root} is not built: run build() first")
            base = render_base_config(settings=self.settings, ami=self.ami, full_log=self.full_log)
            etc = self.etc_dir
            dist = self.host_path("/etc/asterisk.dist")
            dist.mkdir(parents=True, exist_ok=True)
            for path in etc.iterdir():
                # keys/: the TLS certificate of the cloud seats' transport (hotline.asterisk.tls)
                if path.name in ("hotline", "keys") or path.name in base:
                    continue
                if path.is_dir() and not path.is_symlink():
                    target = dist / path.name
                    if target.exists():
                        shutil.rmtree(path)
                    else:
                        path.rename(target)
                elif (dist / path.name).exists():
                    path.unlink()
                else:
                    path.rename(dist / path.name)
            for name, text in base.items():
                _write_if_changed(etc / name, text)
            include_dir = etc / "hotline"
            include_dir.mkdir(exist_ok=True)
            for path in include_dir.iterdir():
                if path.name not in hotline and (path.is_file() or path.is_symlink()):
                    path.unlink()
            for name, text in hotline.items():
                _write_if_changed(include_dir / name, text)

    def reload(self) -> None:
        """Apply the installed configuration to the running Asterisk (``core reload``)."""
        with self._locked():
            self._mark_log()
            self.cli("core reload", timeout=30)
            # core reload is queued; wait until the reload has gone through the modules.
            self.cli("core waitfullybooted", timeout=30)

    # -- classic AGI fallback ------------------------------------------------------------

    @property
    def classic_snapshot_dir(self) -> Path:
        """Where the backend writes rules snapshots for the classic script, on the host."""
        return self.host_path(CLASSIC_SNAPSHOT_DIR)

    def install_classic_agi(self) -> None:
        """Make the chroot ready to run the classic AGI fallback, as an operator would on
        the Asterisk host. Idempotent; run by every build and every ``up``:

        1. Debian's python3-venv (apt), when it is not installed;
        2. a virtual environment at ``CLASSIC_VENV`` with ``CLASSIC_REQUIREMENTS`` (pip,
           from PyPI), made again only when the chroot's Python or the requirements
           changed (marker ``classic-venv.json``);
        3. this checkout's ``routing/`` and ``agi/classic.py`` into
           ``CLASSIC_LIB/<version>``, byte-compiled, then ``CLASSIC_LIB/current`` switched
           to it in one rename (a script starting meanwhile runs the old or the new code);
        4. the script the dialplan runs (``CLASSIC_WRAPPER``, root's, 0755: Asterisk runs
           as root in the chroot) and the snapshot directory (``CLASSIC_SNAPSHOT_DIR``).
        """
        with self._locked():
            if self._classic_installed:
                return
            if not (self.root / "usr/bin/apt-get").exists():
                raise SandboxError(f"the sandbox at {self.root} is not built: run build() first")
            self.log_dir.mkdir(parents=True, exist_ok=True)
            with self._progress() as progress:
                missing = [p for p in CLASSIC_PACKAGES if not self._package_installed(p)]
                if missing:
                    self._install_packages(progress, missing)
                venv = self._classic_venv(progress)
                version = self._classic_code(progress)
                self._classic_script()
            self._classic_installed = True
            self.console.print(
                f"[green]✓[/] classic AGI fallback: {CLASSIC_WRAPPER} (pyst2 "
                f"{venv.get('pyst2', '?')}, pydantic {venv.get('pydantic', '?')}, "
                f"{venv.get('python', '?')}; code {version}; snapshots {CLASSIC_SNAPSHOT_DIR})"
            )

    def _package_installed(self, package: str) -> bool:
        result = subprocess.run(
            ["chroot", str(self.root), "dpkg-query", "-W", "-f=${db:Status-Status}", package],
            capture_output=True, text=True, env=_CHROOT_ENV, check=False,
        )
        return result.returncode == 0 and result.stdout.strip() == "installed"

    def _install_packages(self, progress: Progress, packages: Sequence[str]) -> None:
        """apt-get install into a built chroot, mounting only what is not mounted (Asterisk
        may be running) and unmounting only that afterwards."""
        before = set(self._mounts())
        self._mount(quiet=True)
        try:
            self._apt(progress, ["update"], "apt-get update")
            self._apt(
                progress,
                ["install", "-y", "--no-install-recommends", *packages],
                "apt-get install " + " ".join(packages),
            )
            self._apt(progress, ["clean"], "apt-get clean")
        finally:
            for point in set(self._mounts()) - before:
                subprocess.run(["umount", str(point)], capture_output=True, check=False)

    def _pip_environment(self) -> dict[str, str]:
        """The chroot's environment for pip, with the host's proxies and CA bundle."""
        env = dict(_CHROOT_ENV)
        for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                     "NO_PROXY"):
            if os.environ.get(name):
                env[name] = os.environ[name]
        for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
            value = os.environ.get(name, "")
            if value.startswith(("http://", "https://")):
                env[name] = value
        bundle = host_ca_bundle()
        if bundle is not None:
            inner = f"{CLASSIC_PREFIX}/etc/pip-ca.pem"
            target = self.root / inner.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle, target)
            env["PIP_CERT"] = inner
        return env

    def _classic_venv(self, progress: Progress) -> dict[str, Any]:
        python = self.host_path("/usr/bin/python3")
        if not python.exists():
            raise SandboxError("the chroot has no /usr/bin/python3 (python3-venv missing?)")
        spec = classic_venv_spec(python.name)
        marker = self._read_marker("classic-venv.json")
        venv_python = self.host_path(f"{CLASSIC_VENV}/bin/python3")
        if (marker is not None and {key: marker.get(key) for key in spec} == spec
                and venv_python.exists()):
            return marker
        task = progress.add_task("", step="classic AGI venv", detail=CLASSIC_VENV, total=3)
        (self._state_dir / "classic-venv.json").unlink(missing_ok=True)
        venv_dir = self.root / CLASSIC_VENV.lstrip("/")
        if venv_dir.exists():
            shutil.rmtree(venv_dir)
        self._run(["chroot", str(self.root), "/usr/bin/python3", "-m", "venv", CLASSIC_VENV],
                  step="python3 -m venv", timeout=300)
        progress.update(task, completed=1, detail="pip install " + " ".join(CLASSIC_REQUIREMENTS))

        def on_line(line: str) -> None:
            text = line.strip()
            if text.startswith(("Collecting", "Downloading", "Building", "Installing",
                                "Successfully", "Using cached")):
                progress.update(task, detail=text[:70])

        self._stream(
            ["chroot", str(self.root), f"{CLASSIC_VENV}/bin/python3", "-m", "pip", "install",
             "--no-input", "--disable-pip-version-check", "--progress-bar", "off",
             *CLASSIC_REQUIREMENTS],
            step="pip install (classic AGI venv)", on_line=on_line,
            env=self._pip_environment(),
        )
        progress.update(task, completed=2, detail="checking the imports")
        output = self._run(
            ["chroot", str(self.root), f"{CLASSIC_VENV}/bin/python3", "-c",
             "import json, importlib.metadata as m, asterisk.agi, pydantic; "
             "print(json.dumps({p: m.version(p) for p in ('pyst2', 'pydantic', 'six')}))"],
            step="classic AGI venv imports", timeout=120,
        )
        versions = json.loads(output.strip().splitlines()[-1])
        record = {**spec, **versions, "at": time.time()}
        self._write_marker("classic-venv.json", record)
        progress.update(task, completed=3, detail="ready")
        return record

    def _classic_code(self, progress: Progress) -> str:
        files = classic_code_files()
        version = classic_code_version(files)
        lib = self.root / CLASSIC_LIB.lstrip("/")
        current = lib / "current"
        target = lib / version
        with contextlib.suppress(OSError):
            if os.readlink(current) == version and target.is_dir():
                return version
        task = progress.add_task("", step="classic AGI code",
                                 detail=f"{len(files)} files → {CLASSIC_LIB}/{version}", total=1)
        lib.mkdir(parents=True, exist_ok=True)
        if not target.is_dir():
            staging = lib / f".staging-{version}-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            for name, data in files.items():
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                path.chmod(0o644)
            # Compiled now, so no call pays for it; tracebacks name the final directory.
            self._run(["chroot", str(self.root), f"{CLASSIC_VENV}/bin/python3", "-m",
                       "compileall", "-q", "-d", f"{CLASSIC_LIB}/{version}",
                       f"{CLASSIC_LIB}/{staging.name}"], step="compileall (classic AGI)")
            staging.rename(target)
        previous = None
        with contextlib.suppress(OSError):
            previous = os.readlink(current)
        link = lib / f".current.{os.getpid()}.tmp"
        link.unlink(missing_ok=True)
        link.symlink_to(version)
        link.replace(current)
        # Keep the previous version: a script started just before the switch still reads it.
        for child in lib.iterdir():
            if child.is_dir() and not child.is_symlink() and child.name not in (version,
                                                                                 previous):
                shutil.rmtree(child, ignore_errors=True)
        progress.update(task, completed=1)
        return version

    def _classic_script(self) -> None:
        snapshots = self.classic_snapshot_dir
        snapshots.mkdir(parents=True, exist_ok=True)
        snapshots.chmod(0o750)
        wrapper = self.root / CLASSIC_WRAPPER.lstrip("/")
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        text = classic_wrapper(snapshot_dir=CLASSIC_SNAPSHOT_DIR)
        with contextlib.suppress(OSError):
            if wrapper.read_text(encoding="utf-8") == text and wrapper.stat().st_mode & 0o111:
                return
        temp = wrapper.with_name(f".{wrapper.name}.tmp")
        temp.write_text(text, encoding="utf-8")
        temp.chmod(0o755)  # executable before it takes the name: no call sees it otherwise
        temp.replace(wrapper)

    # -- run ---------------------------------------------------------------------------

    def up(self) -> None:
        """Build if needed (and install the classic AGI fallback's current code), mount,
        start Asterisk (wait fully booted), start the carrier."""
        with self._locked():
            self.build()
            if not (self.etc_dir / "asterisk.conf").exists():
                self.install_config({})
            self._write_hosts()
            self._mount()
            self._start_asterisk()
            self._start_carrier()

    def down(self) -> None:
        """Stop the carrier and Asterisk, unmount proc/dev. Safe to call when already down."""
        with self._locked():
            self._stop_carrier()
            self._stop_asterisk()
            self._unmount()

    def restart_asterisk(self) -> None:
        """Stop and start Asterisk only; the carrier and mounts stay."""
        with self._locked():
            self._stop_asterisk()
            self._mount()
            self._start_asterisk()

    def status(self) -> SandboxStatus:
        built = self.is_built()
        version = uptime = None
        running = False
        if self._asterisk_running():
            with contextlib.suppress(SandboxError):
                version = parse_version(self.cli("core show version", timeout=5))
                uptime = parse_uptime(self.cli("core show uptime", timeout=5))
                running = version is not None
        return SandboxStatus(
            built=built,
            running=running,
            version=version,
            carrier_running=self._carrier_pid() is not None,
            uptime=uptime,
        )

    def cli(self, command: str, timeout: float = 15) -> str:
        """Run one Asterisk CLI command (``asterisk -rx``) and return its output."""
        try:
            result = subprocess.run(
                ["chroot", str(self.root), "/usr/sbin/asterisk", "-rx", command],
                capture_output=True,
                text=True,
                errors="replace",
                env=_CHROOT_ENV,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"asterisk -rx {command!r} timed out after {timeout} s") from exc
        output = result.stdout
        if result.returncode != 0 or output.startswith("Unable to connect to remote asterisk"):
            raise SandboxError(
                f"asterisk -rx {command!r} failed ({result.returncode}): "
                f"{(output + result.stderr).strip()[:500]}"
            )
        return output

    def log_problems(self, *, warnings: bool = True) -> list[str]:
        """ERROR (and WARNING) lines in Asterisk's messages log since the last start/reload."""
        path = self.messages_log
        # Asterisk's logger writes from its own thread: let the file settle first.
        _wait_until(_size_settled(path), 1.0, interval=0.1)
        try:
            stat = path.stat()
        except OSError:
            return []
        offset = 0
        try:
            inode_text, offset_text = self._log_mark.read_text().split()
            if int(inode_text) == stat.st_ino and int(offset_text) <= stat.st_size:
                offset = int(offset_text)
        except (OSError, ValueError):
            offset = 0
        with path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
        return log_problem_lines(text, warnings=warnings)

    def _mark_log(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.messages_log
        try:
            stat = path.stat()
            mark = f"{stat.st_ino} {stat.st_size}\n"
        except OSError:
            mark = "0 0\n"
        self._log_mark.write_text(mark)

    # -- mounts ------------------------------------------------------------------------

    def _mounts(self) -> list[Path]:
        try:
            info = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return []
        return mounts_under(self.root.resolve() if self.root.exists() else self.root, info)

    def _mount(self, *, quiet: bool = False) -> None:
        """Mount proc and bind /dev into the chroot; Asterisk also runs without them."""
        if not self.root.exists():
            return
        mounted = set(self._mounts())
        root = self.root.resolve()
        for target, command in (
            (root / "proc", ["mount", "-t", "proc", "proc", str(root / "proc")]),
            (root / "dev", ["mount", "--bind", "/dev", str(root / "dev")]),
        ):
            if target in mounted:
                continue
            target.mkdir(exist_ok=True)
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0 and not quiet:
                self.console.print(
                    f"[yellow]![/] could not mount {target} ({result.stderr.strip()}); "
                    "Asterisk runs without it"
                )

    def _unmount(self) -> None:
        for point in self._mounts():
            result = subprocess.run(["umount", str(point)], capture_output=True, check=False)
            if result.returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)

    # -- processes in the chroot -------------------------------------------------------

    def _chroot_pids(self) -> list[int]:
        """Processes whose root directory is the chroot (all of them started by us)."""
        root = str(self.root.resolve()) if self.root.exists() else str(self.root)
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "root") == root:
                    pids.append(int(entry.name))
            except OSError:
                continue
        return [pid for pid in pids if _alive(pid)]

    def _kill_chroot_processes(self) -> None:
        pids = self._chroot_pids()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if _wait_until(lambda: not any(_alive(p) for p in pids), 5):
                break
        self._reap()

    def asterisk_pid(self) -> int | None:
        pid = _read_pid(self._asterisk_pidfile)
        if pid is not None and _alive(pid) and _is_asterisk_daemon(_cmdline(pid)):
            return pid
        for pid in self._chroot_pids():
            if _is_asterisk_daemon(_cmdline(pid)):
                return pid
        return None

    def _asterisk_running(self) -> bool:
        return self.root.exists() and self.asterisk_pid() is not None

    def _reap(self) -> None:
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]

    def _start_asterisk(self) -> None:
        if self.asterisk_pid() is not None:
            try:
                self.cli("core waitfullybooted", timeout=self.boot_timeout)
                return
            except SandboxError:
                # Running but not answering on its control socket: start afresh.
                self._stop_asterisk()
        if not _wait_until(lambda: not _port_listening(self.ami.host, self.ami.port), 10):
            raise SandboxError(
                f"port {self.ami.host}:{self.ami.port} (AMI) is taken by another program"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._mark_log()
        started = time.monotonic()
        with self.console.status("starting Asterisk…"), self.console_log.open("ab") as out:
            out.write(f"\n=== start {time.strftime('%F %T')} ===\n".encode())
            out.flush()
            proc = subprocess.Popen(
                [*_raise_nofile(), "chroot", str(self.root), "/usr/sbin/asterisk", "-f", "-n"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_CHROOT_ENV,
                start_new_session=True,
            )
            self._children[proc.pid] = proc
            self._asterisk_pidfile.write_text(f"{proc.pid}\n")
            deadline = started + self.boot_timeout
            while True:
                if proc.poll() is not None:
                    self._asterisk_pidfile.unlink(missing_ok=True)
                    raise SandboxError(
                        f"Asterisk exited with code {proc.returncode} while starting.\n"
                        + self._start_diagnostics()
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._stop_asterisk()
                    raise SandboxError(
                        f"Asterisk did not boot within {self.boot_timeout:.0f} s.\n"
                        + self._start_diagnostics()
                    )
                try:
                    self.cli("core waitfullybooted", timeout=max(1.0, min(remaining, 10)))
                    break
                except SandboxError:
                    time.sleep(0.2)
        self.console.print(
            f"[green]✓[/] Asterisk up (pid {proc.pid}, {time.monotonic() - started:.1f} s)"
        )

    def _start_diagnostics(self) -> str:
        """Console output of the last start and the log lines since it, for an error."""
        parts = []
        with contextlib.suppress(OSError):
            console = self.console_log.read_text(errors="replace").rsplit("=== start", 1)[-1]
            lines = console.splitlines()[1:]
            if lines:
                parts.append(f"--- {self.console_log} ---\n" + "\n".join(lines[-20:]))
        with contextlib.suppress(OSError, ValueError):
            offset = int(self._log_mark.read_text().split()[1])
            with self.messages_log.open("rb") as handle:
                handle.seek(offset)
                lines = handle.read().decode(errors="replace").splitlines()
            if lines:
                parts.append(f"--- {self.messages_log} ---\n" + "\n".join(lines[-30:]))
        return "\n".join(parts) or "(no log output)"

    def _stop_asterisk(self) -> None:
        pid = self.asterisk_pid()
        if pid is None:
            self._asterisk_pidfile.unlink(missing_ok=True)
            return
        with contextlib.suppress(SandboxError):
            self.cli("core stop now", timeout=10)
        if not _wait_until(lambda: not _alive(pid), 15, reap=self._reap):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                if _wait_until(lambda: not _alive(pid), 5, reap=self._reap):
                    break
        if _alive(pid):
            raise SandboxError(f"Asterisk (pid {pid}) does not stop")
        self._reap()
        self._asterisk_pidfile.unlink(missing_ok=True)
        if not _wait_until(lambda: not _port_listening(self.ami.host, self.ami.port), 10):
            raise SandboxError(f"AMI port {self.ami.port} still taken after Asterisk stopped")
        self.console.print("[green]✓[/] Asterisk stopped")

    # -- the simulated carrier ---------------------------------------------------------

    def carrier_command(self) -> list[str]:
        return [
            "sipp",
            "-sf",
            str(CARRIER_SCENARIO),
            "-i",
            self.settings.carrier_address,
            "-p",
            str(self.settings.carrier_port),
            "-mi",
            self.settings.carrier_address,
            "-mp",
            str(CARRIER_MEDIA_PORT),
            "-t",
            "u1",
            "-s",
            "carrier",
            "-aa",
            "-nostdin",
            "-trace_msg",
            "-message_file",
            str(self.carrier_log),
            "-trace_err",
            "-error_file",
            str(self.carrier_error_log),
            # A loaded test machine must not make the carrier quit.
            "-watchdog_minor_maxtriggers",
            "100000000",
            "-watchdog_major_maxtriggers",
            "100000000",
        ]

    def _carrier_pid(self) -> int | None:
        pid = _read_pid(self._carrier_pidfile)
        if pid is None or not _alive(pid):
            return None
        cmdline = _cmdline(pid)
        # Any checkout's carrier counts (the sandbox is shared by every checkout).
        if not cmdline or Path(cmdline[0]).name != "sipp" or not any(
                Path(arg).name == CARRIER_SCENARIO.name for arg in cmdline):
            return None
        return pid

    def _start_carrier(self) -> None:
        pid = self._carrier_pid()
        if pid is not None:
            if str(CARRIER_SCENARIO) in _cmdline(pid):
                return
            # Another checkout's carrier: replace it with this checkout's scenario.
            self._stop_carrier()
        self._require_host_tools("sipp")
        if _udp_bound(self.settings.carrier_address, self.settings.carrier_port):
            raise SandboxError(
                f"UDP {self.settings.carrier_address}:{self.settings.carrier_port} "
                "(simulated carrier) is taken by another program"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        stderr_path = self.log_dir / "carrier-console.log"
        with stderr_path.open("ab") as err:
            proc = subprocess.Popen(
                self.carrier_command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=self.log_dir,
                start_new_session=True,
            )
        self._children[proc.pid] = proc
        self._carrier_pidfile.write_text(f"{proc.pid}\n")
        bound = _wait_until(
            lambda: (
                proc.poll() is not None
                or _udp_bound(self.settings.carrier_address, self.settings.carrier_port)
            ),
            5,
        )
        if proc.poll() is not None or not bound:
            self._stop_carrier()
            raise SandboxError(
                "the simulated carrier (sipp) did not start:\n" + _tail(stderr_path, 20)
            )
        self.console.print(
            f"[green]✓[/] simulated carrier on {self.settings.carrier_address}:"
            f"{self.settings.carrier_port} (pid {proc.pid}, log {self.carrier_log})"
        )

    def _stop_carrier(self) -> None:
        pid = self._carrier_pid()
        if pid is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                if _wait_until(lambda: not _alive(pid), 5, reap=self._reap):
                    break
            self.console.print("[green]✓[/] simulated carrier stopped")
        self._reap()
        self._carrier_pidfile.unlink(missing_ok=True)


def _is_asterisk_daemon(cmdline: list[str]) -> bool:
    """An Asterisk server process (not an ``asterisk -rx`` client)."""
    if not cmdline:
        return False
    if Path(cmdline[0]).name == "chroot":
        cmdline = cmdline[2:]
    if not cmdline or Path(cmdline[0]).name != "asterisk":
        return False
    return not any(arg.startswith("-r") or arg.startswith("-R") for arg in cmdline[1:])


def _raise_nofile() -> list[str]:
    """A ``prlimit`` prefix giving the child the hard open-files limit as its soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft >= hard or shutil.which("prlimit") is None:
        return []
    return ["prlimit", f"--nofile={hard}:{hard}", "--"]


def _wait_until(
    condition: Callable[[], bool],
    timeout: float,
    *,
    interval: float = 0.1,
    reap: Callable[[], None] | None = None,
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if reap is not None:
            reap()
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _size_settled(path: Path) -> Callable[[], bool]:
    """A condition that is true once ``path`` kept its size since the previous check."""
    last: list[int] = []

    def settled() -> bool:
        try:
            size = path.stat().st_size
        except OSError:
            size = -1
        stable = bool(last) and last[-1] == size
        last.append(size)
        return stable

    return settled


def _write_if_changed(path: Path, text: str) -> None:
    with contextlib.suppress(OSError):
        if path.read_text(encoding="utf-8") == text:
            return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
