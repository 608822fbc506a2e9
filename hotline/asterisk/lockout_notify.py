"""fail2ban's notifier: tells the hotline backend about a SIP lock-out over AMI.

fail2ban runs it (as its action ``hotline-notify``) when it locks an address out and when
the lock-out ends::

    python3 -I lockout_notify.py --config FILE ban ADDRESS FAILURES BAN_SECONDS
    python3 -I lockout_notify.py --config FILE unban ADDRESS 0 BAN_SECONDS

It logs in to AMI as a user whose only right is ``write=user`` (it may send UserEvents and
read nothing) and sends ``UserEvent: HotlineLockout`` (or ``HotlineLockoutLifted``); the
backend's AMI listener writes the audit entry and the alert. Standard library only: it runs
with whatever Python the fail2ban host has. FILE (mode 0600) is JSON:
``{"host", "port", "username", "secret", "jail"}``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import sys
import time

EVENTS = {"ban": "HotlineLockout", "unban": "HotlineLockoutLifted"}
TIMEOUT = 5.0


def _clean(value: str) -> str:
    """No CR/LF may reach an AMI header (header injection)."""
    return "".join(ch for ch in value if ch not in "\r\n")


def build_action(fields: dict[str, str]) -> bytes:
    return "".join(f"{_clean(k)}: {_clean(v)}\r\n" for k, v in fields.items()).encode() + b"\r\n"


def _read_message(conn: socket.socket, buffer: bytearray) -> dict[str, str]:
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("AMI closed the connection")
        buffer.extend(chunk)
    raw, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    message: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            message.setdefault(key.strip(), value.strip())
    return message


def _response(conn: socket.socket, buffer: bytearray, action_id: str) -> dict[str, str]:
    while True:
        message = _read_message(conn, buffer)
        if message.get("ActionID") == action_id and "Response" in message:
            return message


def notify(config: dict[str, object], kind: str, address: str, failures: int,
           ban_seconds: int) -> None:
    address = str(ipaddress.ip_address(address))  # refuses anything but an address
    with socket.create_connection((str(config["host"]), int(str(config["port"]))),
                                  timeout=TIMEOUT) as conn:
        buffer = bytearray()
        while b"\r\n" not in buffer:  # the banner line
            chunk = conn.recv(1024)
            if not chunk:
                raise ConnectionError("AMI closed the connection")
            buffer.extend(chunk)
        del buffer[: buffer.index(b"\r\n") + 2]
        conn.sendall(build_action({"Action": "Login", "ActionID": "login",
                                   "Username": str(config["username"]),
                                   "Secret": str(config["secret"]), "Events": "off"}))
        answer = _response(conn, buffer, "login")
        if answer.get("Response") != "Success":
            raise PermissionError(f"AMI login refused: {answer.get('Message', '')}")
        conn.sendall(build_action({
            "Action": "UserEvent", "ActionID": "event", "UserEvent": EVENTS[kind],
            "Address": address, "Failures": str(failures), "BanSeconds": str(ban_seconds),
            "Jail": str(config.get("jail", "")), "At": f"{time.time():.3f}",
        }))
        answer = _response(conn, buffer, "event")
        if answer.get("Response") != "Success":
            raise RuntimeError(f"UserEvent refused: {answer.get('Message', '')}")
        conn.sendall(build_action({"Action": "Logoff", "ActionID": "bye"}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--config", required=True)
    parser.add_argument("kind", choices=sorted(EVENTS))
    parser.add_argument("address")
    parser.add_argument("failures", type=int)
    parser.add_argument("ban_seconds", type=int)
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as handle:
        config = json.load(handle)
    try:
        notify(config, args.kind, args.address, args.failures, args.ban_seconds)
    except (OSError, ValueError, RuntimeError) as error:
        # The lock-out itself stands (the firewall has it); only the notice is lost.
        print(f"hotline lock-out notice not delivered: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
