"""The SIP lock-out's fail2ban configuration and its AMI notifier."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from hotline.asterisk import lockout_notify
from hotline.asterisk.lockout import (
    FILTER,
    JAIL,
    ignore_list,
    parse_banned,
    render_fail2ban,
)
from hotline.config import Settings

LINE = ('[2026-11-30 10:00:0{n}.123] SECURITY[4242] res_security_log.c: '
        'SecurityEvent="{event}",EventTV="2026-11-30T10:00:00.123+0000",Severity="Error",'
        'Service="PJSIP",EventVersion="1",AccountID="c1001",SessionID="1-2",'
        'LocalAddress="IPV4/UDP/127.0.0.1/5060",RemoteAddress="IPV4/{transport}/{ip}/47000"')


def _files(tmp_path: Path, **lockout: object) -> dict[str, str]:
    settings = Settings(var_dir=tmp_path)
    for key, value in lockout.items():
        setattr(settings.lockout, key, value)
    settings.lockout.ami_secret = "notifier-secret"
    return render_fail2ban(settings, directory=tmp_path / "conf",
                           security_log="/var/log/asterisk/security.log",
                           run_dir=tmp_path / "run", log_path=tmp_path / "f2b.log")


def test_jail_follows_the_settings(tmp_path: Path) -> None:
    jail = _files(tmp_path, max_failures=7, find_seconds=300, ban_seconds=900)["jail.conf"]
    assert f"[{JAIL}]" in jail
    for line in ("maxretry = 7", "findtime = 300", "bantime = 900", f"filter = {FILTER}",
                 "logpath = /var/log/asterisk/security.log", "usedns = no",
                 'ports="5060, 5061"'):
        assert line in jail
    # The host itself and the carrier trunk are never locked out.
    assert "ignoreip = 127.0.0.1/32 ::1/128 127.0.0.2/32" in jail
    assert "hotline-notify[" in jail


def test_ignore_list_refuses_garbage() -> None:
    settings = Settings()
    settings.lockout.ignore = ["10.1.0.0/16", "10.1.2.3"]
    assert ignore_list(settings) == ["10.1.0.0/16", "10.1.2.3/32", "127.0.0.2/32"]
    settings.lockout.ignore = ["10.0.0.1 ; rm -rf /"]
    with pytest.raises(ValueError):
        ignore_list(settings)


def test_notifier_config_is_private_material(tmp_path: Path) -> None:
    files = _files(tmp_path)
    assert '"secret": "notifier-secret"' in files["notify.json"]
    assert '"username": "hotline-lockout"' in files["notify.json"]
    assert "dbfile = :memory:" in files["fail2ban.conf"]


@pytest.mark.skipif(shutil.which("fail2ban-regex") is None, reason="needs fail2ban")
def test_filter_counts_failed_sign_ins_only(tmp_path: Path) -> None:
    filter_path = tmp_path / f"{FILTER}.conf"
    filter_path.write_text(_files(tmp_path)[f"filter.d/{FILTER}.conf"])
    lines = [
        LINE.format(n=1, event="ChallengeResponseFailed", transport="UDP", ip="127.0.0.5"),
        LINE.format(n=2, event="InvalidAccountID", transport="TLS", ip="203.0.113.9"),
        LINE.format(n=3, event="InvalidPassword", transport="TCP", ip="2001:db8::7"),
        LINE.format(n=4, event="FailedACL", transport="UDP", ip="198.51.100.1"),
        LINE.format(n=5, event="ChallengeSent", transport="UDP", ip="127.0.0.6"),
        LINE.format(n=6, event="SuccessfulAuth", transport="UDP", ip="127.0.0.7"),
    ]
    log = tmp_path / "security.log"
    log.write_text("\n".join(lines) + "\n")
    result = subprocess.run(["fail2ban-regex", "--print-all-matched", str(log),
                             str(filter_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "Lines: 6 lines, 0 ignored, 4 matched, 2 missed" in result.stdout
    assert "127.0.0.6" not in result.stdout.split("Missed line")[0].split("Matched")[-1]


def test_parse_banned() -> None:
    status = ("Status for the jail: hotline-sip\n|- Filter\n|  |- Currently failed:\t0\n"
              "`- Actions\n   |- Currently banned:\t2\n   |- Total banned:\t2\n"
              "   `- Banned IP list:\t127.0.0.5 2001:db8::7\n")
    assert parse_banned(status) == ["127.0.0.5", "2001:db8::7"]
    assert parse_banned("Banned IP list:\t\n") == []


def test_action_headers_carry_no_line_breaks() -> None:
    data = lockout_notify.build_action({"Action": "UserEvent", "Address": "1.2.3.4\r\nX: y"})
    assert data == b"Action: UserEvent\r\nAddress: 1.2.3.4X: y\r\n\r\n"


def _fake_ami(replies: dict[str, str]) -> tuple[int, list[dict[str, str]], threading.Thread]:
    """An AMI stand-in: answers each action by its ActionID; records what it got."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[dict[str, str]] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(b"Asterisk Call Manager/11.0.0\r\n")
            buffer = b""
            while True:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    raw, buffer = buffer.split(b"\r\n\r\n", 1)
                    fields = dict(line.split(": ", 1) for line in raw.decode().split("\r\n"))
                    received.append(fields)
                    answer = replies.get(fields["Action"], "Success")
                    connection.sendall(f"Response: {answer}\r\nActionID: {fields['ActionID']}"
                                       "\r\nMessage: ok\r\n\r\n".encode())
                    if fields["Action"] == "Logoff":
                        return
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], received, thread


def test_notifier_logs_in_and_sends_one_user_event() -> None:
    port, received, thread = _fake_ami({})
    config = {"host": "127.0.0.1", "port": port, "username": "hotline-lockout",
              "secret": "s", "jail": "hotline-sip"}
    lockout_notify.notify(config, "ban", "127.0.0.5", 5, 900)
    thread.join(5)
    assert [r["Action"] for r in received] == ["Login", "UserEvent", "Logoff"]
    assert received[0]["Username"] == "hotline-lockout"
    assert received[0]["Events"] == "off"
    event = received[1]
    assert event["UserEvent"] == "HotlineLockout"
    assert (event["Address"], event["Failures"], event["BanSeconds"], event["Jail"]) == (
        "127.0.0.5", "5", "900", "hotline-sip")


def test_notifier_refuses_what_is_not_an_address(tmp_path: Path) -> None:
    config = tmp_path / "notify.json"
    config.write_text('{"host": "127.0.0.1", "port": 9, "username": "u", "secret": "s"}')
    assert lockout_notify.main(["--config", str(config), "ban", "127.0.0.5\r\nAction: X",
                                "1", "1"]) == 1


def test_notifier_reports_a_refused_login(tmp_path: Path) -> None:
    port, _received, thread = _fake_ami({"Login": "Error"})
    config = tmp_path / "notify.json"
    config.write_text(f'{{"host": "127.0.0.1", "port": {port}, "username": "u", '
                      '"secret": "wrong"}')
    assert lockout_notify.main(["--config", str(config), "unban", "127.0.0.5", "0", "1"]) == 1
    thread.join(1)
