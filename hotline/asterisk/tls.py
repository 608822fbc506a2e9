"""The TLS certificate of the SIP-over-TLS transport for cloud seats (home softphones).

Generated on first use with ``openssl`` into ``<var>/tls/`` (mode 0700, keys 0600, never
committed, like the secrets of ``hotline.secrets``): a local certificate authority
(``ca.crt``, ``ca.key``) and a server certificate it signs (``server.crt``, ``server.key``)
for this machine's names and addresses. A softphone that verifies the server imports
``ca.crt`` once; the server certificate is issued again, by the same authority, when the
names change or it nears its end. In production point ``asterisk.tls_cert_file`` and
``asterisk.tls_key_file`` at a certificate of your own instead.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hotline.asterisk.sandbox import AsteriskSandbox
    from hotline.config import Settings

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity clients accept for a server certificate
RENEW_BEFORE_SECONDS = 30 * 86400
KEY_SPEC = "rsa:3072"  # every softphone speaks RSA; 3072 bits for 128-bit strength


class TlsError(RuntimeError):
    """The certificate could not be made (no openssl, a failing command)."""


@dataclass(frozen=True)
class TlsFiles:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def names_file(self) -> Path:
        return self.directory / "server-names.json"


def tls_directory(var_dir: Path) -> Path:
    return var_dir / "tls"


def subject_alt_names(names: Iterable[str]) -> list[str]:
    """``DNS:x`` / ``IP:y`` entries, deduplicated, in the order given; empty names dropped."""
    entries: list[str] = []
    for name in names:
        name = name.strip()
        if not name:
            continue
        try:
            entry = f"IP:{ipaddress.ip_address(name)}"
        except ValueError:
            if any(c in name for c in ",/\\ \n\r\0=") or name.startswith("."):
                raise ValueError(f"not a host name: {name!r}") from None
            entry = f"DNS:{name.lower()}"
        if entry not in entries:
            entries.append(entry)
    if not entries:
        raise ValueError("a server certificate needs at least one name or address")
    return entries


def _openssl(*args: str) -> str:
    if shutil.which("openssl") is None:
        raise TlsError("openssl is not installed (apt-get install openssl)")
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise TlsError(f"openssl {args[0]} failed: {(result.stderr or result.stdout)[-800:]}")
    return result.stdout


def _private(path: Path) -> None:
    path.chmod(0o600)


def _make_ca(files: TlsFiles) -> None:
    _openssl("req", "-x509", "-newkey", KEY_SPEC, "-nodes", "-sha256",
             "-keyout", str(files.ca_key), "-out", str(files.ca_cert),
             "-days", str(CA_DAYS), "-subj", "/O=hotline12355/CN=hotline12355 local CA",
             "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _private(files.ca_key)


def _make_server(files: TlsFiles, entries: Sequence[str]) -> None:
    common_name = entries[0].split(":", 1)[1]
    with tempfile.TemporaryDirectory(dir=files.directory) as work:
        key = Path(work) / "server.key"
        csr = Path(work) / "server.csr"
        cert = Path(work) / "server.crt"
        extensions = Path(work) / "server.ext"
        extensions.write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            f"subjectAltName={','.join(entries)}\n"
        )
        _openssl("req", "-newkey", KEY_SPEC, "-nodes", "-sha256", "-keyout", str(key),
                 "-out", str(csr), "-subj", f"/O=hotline12355/CN={common_name}")
        _private(key)
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(files.ca_cert),
                 "-CAkey", str(files.ca_key), "-set_serial",
                 str(int.from_bytes(os.urandom(16), "big") >> 1), "-sha256",
                 "-days", str(SERVER_DAYS), "-extfile", str(extensions), "-out", str(cert))
        # The key first: a reader never pairs a new certificate with the old key for long.
        key.replace(files.server_key)
        cert.replace(files.server_cert)
    files.names_file.write_text(json.dumps(list(entries)) + "\n")


def _valid_for_a_while(cert: Path) -> bool:
    try:
        _openssl("x509", "-in", str(cert), "-noout", "-checkend", str(RENEW_BEFORE_SECONDS))
    except TlsError:
        return False
    return True


def _recorded_names(files: TlsFiles) -> list[str] | None:
    try:
        value = json.loads(files.names_file.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, list) else None


def ensure_tls_files(var_dir: Path, names: Iterable[str]) -> TlsFiles:
    """The CA and a server certificate for ``names``, made when missing, expiring or issued
    for other names (the CA is kept: softphones that trust it go on trusting)."""
    entries = subject_alt_names(names)
    files = TlsFiles(tls_directory(var_dir))
    files.directory.mkdir(parents=True, exist_ok=True)
    files.directory.chmod(0o700)
    ca_ok = (files.ca_cert.exists() and files.ca_key.exists()
             and _valid_for_a_while(files.ca_cert))
    if not ca_ok:
        _make_ca(files)
    if (not ca_ok or not files.server_cert.exists() or not files.server_key.exists()
            or _recorded_names(files) != entries
            or not _valid_for_a_while(files.server_cert)):
        _make_server(files, entries)
    return files


def certificate_text(cert: Path) -> str:
    """``openssl x509 -text`` of a certificate (tests and operators read it)."""
    return _openssl("x509", "-in", str(cert), "-noout", "-text")


def fingerprint(cert: Path) -> str:
    """The SHA-256 fingerprint a counsellor can compare in the softphone's dialog."""
    output = _openssl("x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256")
    return output.strip().split("=", 1)[-1]


def sip_host(settings: Settings) -> str:
    """The address softphones reach: the SIP bind address, or this machine's outward one."""
    if settings.asterisk.sip_bind not in ("0.0.0.0", "::", ""):
        return settings.asterisk.sip_bind
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def server_names(settings: Settings) -> list[str]:
    """What the server certificate is valid for: the configured names first, then the
    address softphones use, this machine's hostname, localhost and 127.0.0.1."""
    return [*settings.asterisk.tls_names, sip_host(settings), socket.gethostname(),
            "localhost", "127.0.0.1"]


def ca_path_in_asterisk(settings: Settings) -> str:
    """Where the sandbox puts the CA certificate beside the server's (for reference)."""
    return str(Path(settings.asterisk.tls_cert_file).with_name("hotline-ca.crt"))


def install_sandbox_tls(settings: Settings, sandbox: AsteriskSandbox) -> bool:
    """Generate the certificate if needed and copy it into the chroot where Asterisk reads
    it (``asterisk.tls_cert_file`` / ``tls_key_file``). True when a file changed: Asterisk
    reads them only when the TLS transport starts, so a running one must restart."""
    files = ensure_tls_files(settings.var_dir, server_names(settings))
    changed = False
    for source, inner, mode in (
        (files.server_key, settings.asterisk.tls_key_file, 0o600),
        (files.server_cert, settings.asterisk.tls_cert_file, 0o644),
        (files.ca_cert, ca_path_in_asterisk(settings), 0o644),
    ):
        target = sandbox.host_path(inner)
        data = source.read_bytes()
        try:
            if target.read_bytes() == data:
                continue
        except OSError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        tmp.chmod(mode)
        tmp.replace(target)
        changed = True
    return changed
