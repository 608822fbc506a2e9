"""FastAGI route `survey`: after the counsellor hangs up, ask the caller for a 1–5 rating.

The dialplan calls it with: linkedid, site code. A site with the survey switched off
returns at once. The score is written to the call record; a caller who presses nothing
or hangs up simply leaves no score.
"""

from __future__ import annotations

import structlog

from agi.fastagi import AgiChannel, AgiCommandError, AgiHangup
from hotline.calls.storage import CallJournal
from hotline.clock import Clock
from hotline.rules.published import RoutingTable

log = structlog.get_logger(__name__)

VALID_SCORES = "12345"
TRIES = 2


class SurveyRoute:
    def __init__(self, *, journal: CallJournal, clock: Clock, routing: RoutingTable,
                 timeout_ms: int = 6000) -> None:
        self._journal = journal
        self._clock = clock
        self._routing = routing
        self._timeout_ms = timeout_ms

    async def __call__(self, channel: AgiChannel) -> None:
        args = [*channel.args, "", ""]
        linkedid = args[0] or channel.headers.get("agi_linkedid", "")
        site = self._routing.site(args[1])
        survey = site.rules.survey
        if not survey.enabled or not linkedid:
            return
        answers: list[str | None] = []
        try:
            for attempt in range(TRIES):
                if attempt:
                    await self._play(channel, site.sound(survey.invalid_prompt))
                try:
                    digit = await channel.get_data(site.sound(survey.prompt), self._timeout_ms, 1)
                except AgiCommandError:
                    digit = None
                answers.append(digit)
                if digit and digit in VALID_SCORES:
                    score = int(digit)
                    self._journal.record(linkedid, self._clock.now(), event="survey",
                                         source="agi", data={"score": score, "tries": attempt + 1},
                                         survey_score=score)
                    await self._play(channel, site.sound(survey.thanks_prompt))
                    return
                if digit is None:
                    break
        except AgiHangup:
            pass
        self._journal.record(linkedid, self._clock.now(), event="survey_unanswered",
                             source="agi", data={"answers": answers})

    async def _play(self, channel: AgiChannel, sound: str) -> None:
        try:
            await channel.stream_file(sound)
        except AgiCommandError:
            log.warning("survey prompt could not be played", sound=sound)
