"""FastAGI route `queue-callback`: a caller in a consultation queue pressed 1 to be called
back in their turn. The dialplan passes the linkedid, site, queue, when the caller joined
(epoch seconds) and their caller ID (base64). On success HOTLINE_CALLBACK_TASK is set and
the dialplan confirms and hangs up; otherwise (a withheld number, the crisis queue, the
backend down) the caller goes back into the queue at the place they had."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import structlog

from agi.fastagi import AgiChannel
from agi.ivr import decode_b64
from hotline.calls.storage import CallJournal
from hotline.clock import Clock
from hotline.rules.published import RoutingTable
from routing.callers import normalise_number

log = structlog.get_logger(__name__)

class CallbackRequests(Protocol):
    """Where a request is recorded (voicemail.queue_callbacks.QueueCallbacks)."""

    async def request(self, *, site: str, queue: str, number: str, joined_at: datetime,
                      call_id: str | None) -> int: ...


# Queue kinds that offer a callback: never the crisis queue (a crisis caller stays with us).
OFFERED_IN = frozenset({"psych", "legal"})


class QueueCallbackRoute:
    def __init__(self, *, requests: CallbackRequests, journal: CallJournal, clock: Clock,
                 routing: RoutingTable) -> None:
        self._requests = requests
        self._journal = journal
        self._clock = clock
        self._routing = routing

    async def __call__(self, channel: AgiChannel) -> None:
        args = [*channel.args, "", "", "", "", ""]
        linkedid, site_code, queue, joined, raw = args[0], args[1], args[2], args[3], args[4]
        site = self._routing.site(site_code)
        number = normalise_number(decode_b64(raw))
        now = self._clock.now()
        refused = ("not offered in this queue"
                   if site.queue_kinds.get(queue) not in OFFERED_IN
                   else "no number to call back" if not number.number else "")
        if refused:
            log.info("queue callback refused", site=site.code, queue=queue, reason=refused)
            await channel.set_variables({"HOTLINE_CALLBACK_REFUSED": refused})
            return
        # ${EPOCH} is Asterisk's (real) clock; decisions and records read ours.
        joined_at = (self._clock.from_real(datetime.fromtimestamp(int(joined), UTC))
                     if joined.isdigit() else now)
        task = await self._requests.request(
            site=site.code, queue=queue, number=number.number, joined_at=joined_at,
            call_id=self._journal.call_id(linkedid) if linkedid else None)
        self._journal.record(linkedid, now, event="callback_requested", source="agi",
                             data={"queue": queue, "task": task,
                                   "joined_at": joined_at.isoformat()})
        await channel.set_variables({"HOTLINE_CALLBACK_TASK": str(task)})
