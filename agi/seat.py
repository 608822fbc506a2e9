"""FastAGI route `seat`: a counsellor's feature codes on their own phone — log in, log
out, pause with a reason, resume (which also ends a debrief pause early).

The dialplan calls it with: the calling endpoint's name, the action, a reason digit. It
sets HOTLINE_SEAT_RESULT (ok | unknown | failed) and HOTLINE_SEAT_PROMPT (what to play);
the dialplan plays it, so a backend outage still answers the counsellor ("failed").
"""

from __future__ import annotations

import structlog

from agi.fastagi import AgiChannel
from hotline.audit import Actor
from hotline.staffing.roster import Roster
from hotline.staffing.services import Staffing, StaffingError

log = structlog.get_logger(__name__)

# The digit after the pause code: *631 break, *632 debrief, *633 admin (*63 alone: break).
PAUSE_REASONS = {"": "break", "1": "break", "2": "debrief", "3": "admin"}
PROMPTS = {"login": "hotline/seat-logged-in", "logout": "hotline/seat-logged-out",
           "pause": "hotline/seat-paused", "unpause": "hotline/seat-unpaused"}
FAILED = "hotline/seat-failed"


class SeatRoute:
    def __init__(self, *, staffing: Staffing, roster: Roster) -> None:
        self._staffing = staffing
        self._roster = roster

    async def __call__(self, channel: AgiChannel) -> None:
        args = [*channel.args, "", "", ""]
        endpoint, action, detail = args[0], args[1], args[2]
        counsellor = self._roster.counsellor(f"PJSIP/{endpoint}")
        if counsellor is None or action not in PROMPTS:
            log.warning("feature code from an unknown phone or for an unknown action",
                        endpoint=endpoint, action=action)
            await channel.set_variables({"HOTLINE_SEAT_RESULT": "unknown",
                                         "HOTLINE_SEAT_PROMPT": FAILED})
            return
        # The phone is the counsellor's own: they act as themselves.
        actor = Actor(username=f"phone:{endpoint}", role="counsellor",
                      user_id=counsellor.user_id)
        try:
            if action == "login":
                await self._staffing.log_in(actor, counsellor.id)
            elif action == "logout":
                await self._staffing.log_out(actor, counsellor.id)
            elif action == "pause":
                await self._staffing.pause(actor, counsellor.id,
                                           PAUSE_REASONS.get(detail, "break"))
            else:
                await self._staffing.unpause(actor, counsellor.id)
        except StaffingError as error:
            log.warning("feature code refused", endpoint=endpoint, action=action,
                        error=error.message)
            await channel.set_variables({"HOTLINE_SEAT_RESULT": "failed",
                                         "HOTLINE_SEAT_PROMPT": FAILED})
            return
        await channel.set_variables({"HOTLINE_SEAT_RESULT": "ok",
                                     "HOTLINE_SEAT_PROMPT": PROMPTS[action]})
