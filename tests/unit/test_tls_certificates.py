"""The cloud seats' TLS certificate: a local CA and a server certificate made with openssl."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from hotline.asterisk.tls import (
    certificate_text,
    ensure_tls_files,
    fingerprint,
    subject_alt_names,
)

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

NAMES = ["sip.example.org", "192.0.2.10", "localhost", "127.0.0.1"]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    var_dir = tmp_path_factory.mktemp("var")
    ensure_tls_files(var_dir, NAMES)
    return var_dir


def test_subject_alt_names() -> None:
    assert subject_alt_names(["Sip.Example.org", "192.0.2.10", "", "::1", "192.0.2.10"]) == [
        "DNS:sip.example.org", "IP:192.0.2.10", "IP:::1"]
    with pytest.raises(ValueError):
        subject_alt_names(["bad,name"])
    with pytest.raises(ValueError):
        subject_alt_names([""])


def test_files_are_private_and_in_the_var_directory(made: Path) -> None:
    tls = made / "tls"
    assert (tls.stat().st_mode & 0o777) == 0o700
    for name in ("ca.key", "server.key"):
        assert ((tls / name).stat().st_mode & 0o777) == 0o600
    for name in ("ca.crt", "server.crt"):
        assert (tls / name).read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_server_certificate_is_signed_by_the_ca_for_the_names(made: Path) -> None:
    tls = made / "tls"
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(tls / "ca.crt"),
                               "-purpose", "sslserver", str(tls / "server.crt")],
                              capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stderr
    text = certificate_text(tls / "server.crt")
    for entry in ("DNS:sip.example.org", "IP Address:192.0.2.10", "DNS:localhost",
                  "IP Address:127.0.0.1"):
        assert entry in text
    assert "TLS Web Server Authentication" in text
    assert "CA:FALSE" in text
    assert "Public-Key: (3072 bit)" in text
    ca = certificate_text(tls / "ca.crt")
    assert "CA:TRUE" in ca
    assert len(fingerprint(tls / "server.crt").split(":")) == 32


def test_kept_when_nothing_changed_and_reissued_by_the_same_ca(made: Path) -> None:
    tls = made / "tls"
    before = {name: (tls / name).read_bytes() for name in ("ca.crt", "server.crt", "server.key")}
    ensure_tls_files(made, NAMES)
    assert {name: (tls / name).read_bytes() for name in before} == before
    # The machine got another address: a new server certificate, the CA stays trusted.
    ensure_tls_files(made, [*NAMES, "198.51.100.7"])
    assert (tls / "ca.crt").read_bytes() == before["ca.crt"]
    assert (tls / "server.crt").read_bytes() != before["server.crt"]
    assert "IP Address:198.51.100.7" in certificate_text(tls / "server.crt")
    ensure_tls_files(made, NAMES)  # back as the other tests expect


def test_a_tls_client_trusting_the_ca_accepts_the_server(made: Path) -> None:
    tls = made / "tls"
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tls / "server.crt", tls / "server.key")
    client_context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        connection, _ = listener.accept()
        with server_context.wrap_socket(connection, server_side=True) as tls_conn:
            tls_conn.sendall(tls_conn.recv(100).upper())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            client_context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        conn.sendall(b"register")
        assert conn.recv(100) == b"REGISTER"
        assert conn.version() in ("TLSv1.2", "TLSv1.3")
    thread.join(5)
    listener.close()


class _FakeSandbox:
    def __init__(self, root: Path) -> None:
        self.root = root

    def host_path(self, inner: str) -> Path:
        return self.root / inner.lstrip("/")


def test_installed_into_the_chroot_once(made: Path, tmp_path: Path) -> None:
    from hotline.asterisk.tls import install_sandbox_tls
    from hotline.config import Settings

    settings = Settings(var_dir=made)
    settings.asterisk.tls_names = NAMES  # the names the module fixture made it for
    sandbox = _FakeSandbox(tmp_path / "chroot")
    assert install_sandbox_tls(settings, sandbox) is True  # type: ignore[arg-type]
    keys = tmp_path / "chroot/etc/asterisk/keys"
    assert (keys / "hotline-server.key").read_bytes() == (made / "tls/server.key").read_bytes()
    assert ((keys / "hotline-server.key").stat().st_mode & 0o777) == 0o600
    assert (keys / "hotline-server.crt").exists() and (keys / "hotline-ca.crt").exists()
    # Nothing changed: nothing to restart.
    assert install_sandbox_tls(settings, sandbox) is False  # type: ignore[arg-type]
