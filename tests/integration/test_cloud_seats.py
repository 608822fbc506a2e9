"""Cloud seats for real: SIP over TLS on the sandboxed Asterisk, and the lock-out of an
address that keeps failing to sign in (fail2ban drops its packets, the backend audits it).

sipp here is built without TLS (``sipp -v``: SCTP-PCAP-RTPSTREAM), so the TLS softphone is
Python's ssl module speaking SIP: a REGISTER, the 401 challenge, digest auth, 200 OK.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REPO, Backend
from tests.integration.sipp import CallResult, _read, _scenario, _sipp, free_port_pair, register

pytestmark = pytest.mark.integration

ATTACKER = "127.0.0.5"  # any 127/8 address is this machine's: sipp binds it as a stranger


# -- a SIP-over-TLS softphone ----------------------------------------------------------------

class TlsSoftphone:
    def __init__(self, *, ca_file: Path, host: str = "127.0.0.1", port: int = 5061) -> None:
        context = ssl.create_default_context(cafile=str(ca_file))
        raw = socket.create_connection((host, port), timeout=10)
        self.conn = context.wrap_socket(raw, server_hostname=host)
        self.host, self.port = host, port
        self.local_port = self.conn.getsockname()[1]
        self.call_id = secrets.token_hex(8)
        self.cseq = 0
        self._buffer = b""

    def close(self) -> None:
        self.conn.close()

    def _read_response(self) -> tuple[int, dict[str, list[str]]]:
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.conn.recv(4096)
            if not chunk:
                raise ConnectionError("Asterisk closed the TLS connection")
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        length = int(headers.get("content-length", ["0"])[0])
        while len(self._buffer) < length:
            self._buffer += self.conn.recv(4096)
        self._buffer = self._buffer[length:]
        return int(lines[0].split()[1]), headers

    def register(self, user: str, *, expires: int = 600,
                 authorization: str = "") -> tuple[int, dict[str, list[str]]]:
        self.cseq += 1
        uri = f"sip:{self.host}:{self.port}"
        request = (
            f"REGISTER {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/TLS 127.0.0.1:{self.local_port};branch=z9hG4bK{secrets.token_hex(8)}"
            ";rport\r\n"
            f"From: <sip:{user}@{self.host}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{user}@{self.host}>\r\n"
            f"Call-ID: {self.call_id}\r\nCSeq: {self.cseq} REGISTER\r\n"
            f"Contact: <sip:{user}@127.0.0.1:{self.local_port};transport=tls>\r\n"
            f"Expires: {expires}\r\nMax-Forwards: 70\r\n"
            "User-Agent: hotline12355-test-tls-softphone\r\n"
            + (f"Authorization: {authorization}\r\n" if authorization else "")
            + "Content-Length: 0\r\n\r\n")
        self.conn.sendall(request.encode())
        while True:
            status, headers = self._read_response()
            if status >= 200:
                return status, headers

    def sign_in(self, user: str, password: str, *, expires: int = 600) -> int:
        status, headers = self.register(user, expires=expires)
        assert status == 401, status
        challenge = next(h for h in headers["www-authenticate"] if "MD5" in h.upper()
                         or "algorithm" not in h.lower())
        return self.register(user, expires=expires,
                             authorization=digest(challenge, user, password,
                                                  f"sip:{self.host}:{self.port}"))[0]


def digest(challenge: str, user: str, password: str, uri: str) -> str:
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1 = md5(f"{user}:{fields['realm']}:{password}")
    ha2 = md5(f"REGISTER:{uri}")
    cnonce, nc = secrets.token_hex(8), "00000001"
    if "auth" in fields.get("qop", "").split(","):
        response = md5(f"{ha1}:{fields['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        extra = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response, extra = md5(f"{ha1}:{fields['nonce']}:{ha2}"), ""
    opaque = f', opaque="{fields["opaque"]}"' if "opaque" in fields else ""
    return (f'Digest username="{user}", realm="{fields["realm"]}", nonce="{fields["nonce"]}", '
            f'uri="{uri}", response="{response}", algorithm=MD5{extra}{opaque}')


# -- helpers ---------------------------------------------------------------------------------

def _sandbox() -> Any:
    from hotline.asterisk.sandbox import AsteriskSandbox
    from hotline.config import load_settings

    settings = load_settings()
    return AsteriskSandbox(settings=settings.asterisk, ami=settings.ami, var_dir=settings.var_dir)


def _hotline(backend: Backend, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "hotline.cli", *args], env=backend.env,
                          cwd=REPO, check=True, stdout=subprocess.PIPE, text=True,
                          timeout=60).stdout


def _banned(backend: Backend) -> list[str]:
    return _hotline(backend, "asterisk", "lockouts").split()


def _wait(condition: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _register_from(workdir: Path, address: str, *, user: str, password: str,
                   expires: int = 600, retransmissions: int = 7,
                   port: int | None = None) -> CallResult:
    """A softphone's REGISTER with digest auth from ``address`` (and ``port``: Asterisk
    rewrites the Contact to the source, so only the same port unregisters it). Unanswered,
    sipp gives up after ``retransmissions`` resends (3: about 7.5 s, 7: about 20 s)."""
    port, media = (port, free_port_pair()[1]) if port else free_port_pair()
    scenario = _scenario("register", workdir, user=user, password=password,
                         contact_port=str(port), expires=str(expires))
    done = subprocess.run(_sipp(scenario, local_ip=address, port=port, media_port=media,
                                extra=["-max_retrans", str(retransmissions)]),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return CallResult(done.returncode, _read(scenario.with_suffix(".messages.log")),
                      _read(scenario.with_suffix(".errors.log")))


def _guess_passwords(workdir: Path, address: str, *, user: str, tries: int) -> CallResult:
    port, media = free_port_pair()
    scenario = _scenario("register_wrong_password", workdir, user=user,
                         password="not-the-password")
    done = subprocess.run(_sipp(scenario, local_ip=address, port=port, media_port=media,
                                calls=tries, extra=["-l", "1", "-max_retrans", "3"]),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return CallResult(done.returncode, _read(scenario.with_suffix(".messages.log")),
                      _read(scenario.with_suffix(".errors.log")))


def _db_rows(backend: Backend, address: str) -> tuple[list[Any], list[Any]]:
    from sqlalchemy import select

    from hotline.db.engine import create_engine_for
    from hotline.db.models import Alert, AuditEntry

    async def load() -> tuple[list[Any], list[Any]]:
        engine = create_engine_for(backend.env["HOTLINE_DATABASE__URL"])
        async with engine.connect() as connection:
            audits = (await connection.execute(
                select(AuditEntry.action, AuditEntry.actor, AuditEntry.after)
                .where(AuditEntry.target == f"address:{address}")
                .order_by(AuditEntry.id))).all()
            alerts = (await connection.execute(
                select(Alert.key, Alert.state, Alert.details)
                .where(Alert.key == f"sip-lockout:{address}"))).all()
        await engine.dispose()
        return list(audits), list(alerts)

    return asyncio.run(load())


# -- tests -----------------------------------------------------------------------------------

def test_cloud_seat_signs_in_over_tls(backend: Backend, counsellors: dict[str, str]) -> None:
    ca_file = Path(backend.env["HOTLINE_VAR_DIR"]) / "tls" / "ca.crt"
    settings = backend.settings
    phone = TlsSoftphone(ca_file=ca_file, port=settings.asterisk.tls_port)
    try:
        # The server certificate verifies against the generated CA for 127.0.0.1.
        assert phone.conn.version() == "TLSv1.3"
        status, headers = phone.register("c1001")
        assert status == 401
        assert any("digest" in h.lower() for h in headers["www-authenticate"])
        phone.cseq = 0
        phone.call_id = secrets.token_hex(8)
        # (a short registration: a failed assertion below leaves no contact for long)
        assert phone.sign_in("c1001", counsellors["c1001"], expires=60) == 200
        contacts = _sandbox().cli("pjsip show aor c1001")
        assert re.search(r"transport=tls", contacts, re.IGNORECASE), contacts
        endpoint = _sandbox().cli("pjsip show endpoint c1001")
        assert re.search(r"media_encryption\s*:\s*sdes", endpoint), endpoint
        assert re.search(r"ice_support\s*:\s*true", endpoint), endpoint
        assert re.search(r"rewrite_contact\s*:\s*true", endpoint), endpoint
        assert phone.sign_in("c1001", counsellors["c1001"], expires=0) == 200
    finally:
        phone.close()


def test_repeated_failures_lock_the_address_out_for_a_while(
        backend: Backend, counsellors: dict[str, str], tmp_path: Path) -> None:
    lockout = backend.settings.lockout
    _hotline(backend, "asterisk", "lockouts", "--unban", ATTACKER)
    assert ATTACKER not in _banned(backend)

    _guess_passwords(tmp_path, ATTACKER, user="c1003", tries=lockout.max_failures)
    # (a wrong password registers nothing: no contact is left behind)
    assert _wait(lambda: ATTACKER in _banned(backend), 15), "the guesser was not locked out"
    locked_at = time.monotonic()

    # From the locked-out address even the right password gets no answer ...
    refused = _register_from(tmp_path, ATTACKER, user="c1003", password=counsellors["c1003"],
                             retransmissions=3)
    assert time.monotonic() - locked_at < lockout.ban_seconds  # all of it inside the ban
    assert not refused.ok
    assert refused.messages.count("REGISTER sip:") >= 3  # sent and resent, never answered
    assert "SIP/2.0 200" not in refused.messages and "SIP/2.0 401" not in refused.messages
    # ... while the counsellors on 127.0.0.1 sign in as ever.
    port = free_port_pair()[0]
    ok = register(tmp_path, user="c1002", password=counsellors["c1002"], contact_port=port,
                  port=port)
    assert ok.ok, ok.errors[-2000:]
    # Unregistered from the same port, or the other tests would ring a stale contact.
    assert register(tmp_path, user="c1002", password=counsellors["c1002"], contact_port=port,
                    port=port, expires=0).ok

    # The lock-out is in the audit log and raised one alert.
    assert _wait(lambda: bool(_db_rows(backend, ATTACKER)[1]), 15)
    audits, alerts = _db_rows(backend, ATTACKER)
    locks = [a for a in audits if a.action == "sip.lockout"]
    assert locks and locks[-1].actor == "fail2ban"
    assert locks[-1].after["failures"] >= lockout.max_failures
    assert locks[-1].after["ban_seconds"] == lockout.ban_seconds
    assert len(alerts) == 1 and alerts[0].state.value == "open"

    # The lock-out ends by itself after lockout.ban_seconds.
    assert _wait(lambda: ATTACKER not in _banned(backend), lockout.ban_seconds + 20)
    assert time.monotonic() - locked_at >= lockout.ban_seconds - 2
    port = free_port_pair()[0]
    back = _register_from(tmp_path, ATTACKER, user="c1003", password=counsellors["c1003"],
                          port=port)
    assert back.ok, back.errors[-2000:]
    assert _register_from(tmp_path, ATTACKER, user="c1003", password=counsellors["c1003"],
                          port=port, expires=0).ok
    assert _wait(lambda: any(a.action == "sip.lockout_lifted"
                             for a in _db_rows(backend, ATTACKER)[0]), 15)
