"""FastAGI route `police-ready`: the counsellor pressed the police key; can the backend move
the call into the police room (crisis/police.py needs its AMI link for that)?

It sets HOTLINE_POLICE_READY to 1 (the dialplan then sends the HotlinePoliceKey event and
the backend does the rest) or 0. Answered 0, or not answered at all (the backend down), the
dialplan brings 110 into the call by itself ([hotline-police-fallback]): the police key never
depends on this process being up.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from agi.fastagi import AgiChannel

log = structlog.get_logger(__name__)


class PoliceReadyRoute:
    def __init__(self, *, ami_connected: Callable[[], bool]) -> None:
        self._ami_connected = ami_connected

    async def __call__(self, channel: AgiChannel) -> None:
        ready = self._ami_connected()
        if not ready:
            log.error("police key pressed while the AMI link is down: the dialplan dials 110 "
                      "into the call itself", channel=channel.headers.get("agi_channel", ""))
        await channel.set_variables({"HOTLINE_POLICE_READY": "1" if ready else "0"})
