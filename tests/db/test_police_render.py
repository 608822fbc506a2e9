"""The one-key police alert as rendered: only the counsellor's leg has the feature codes,
the room is recorded and nobody in it ends it for the others, 110 is tried as configured,
and a bad setting is refused before Asterisk sees it."""

import pytest
from pydantic import ValidationError

from hotline.config import CrisisSettings, Settings
from tests.db.test_transfer_render import _contexts, _render


async def test_the_counsellors_leg_alone_gets_the_feature_codes(engine, tmp_path):
    _plan, files = await _render(engine, tmp_path)
    features = files["features.conf"]
    assert "[applicationmap](+)" in features
    assert "hotline-police => *0,self,Gosub(hotline-police-key,police,1)" in features
    assert "hotline-high-risk => *8,self,Gosub(hotline-police-key,high-risk,1)" in features
    contexts = _contexts(files["extensions.conf"])
    assert "Set(DYNAMIC_FEATURES=hotline-police#hotline-high-risk)" in contexts[
        "hotline-counsellor-leg"]
    # Never inherited from the caller's channel: a caller pressing *0 triggers nothing.
    assert "__DYNAMIC_FEATURES" not in files["extensions.conf"]
    assert "UserEvent(HotlinePoliceKey," in contexts["hotline-police-key"]


async def test_the_room_is_recorded_and_110_is_retried(engine, tmp_path):
    _plan, files = await _render(engine, tmp_path)
    contexts = _contexts(files["extensions.conf"])
    room = contexts["hotline-police-conf"]
    assert "Set(CONFBRIDGE(bridge,record_conference)=yes)" in room
    assert ("Set(CONFBRIDGE(bridge,record_file)=/var/spool/asterisk/monitor/hotline/"
            "${HOTLINE_ROOM}.wav)") in room
    # The caller never sits in silence: hold music while nobody else is in the room.
    assert "?Set(CONFBRIDGE(user,music_on_hold_when_empty)=yes))" in room
    # Nobody is marked: the caller stays with the police when the counsellor's leg drops.
    assert "marked" not in room and "end_marked" not in room
    dial = contexts["hotline-police-dial"]
    assert "Dial(PJSIP/110@carrier,30,U(hotline-police-announce^" in dial
    assert "GotoIf($[${HOTLINE_POLICE_TRY} >= 3]?failed)" in dial
    assert "Playback(hotline/police-retrying)" in dial
    # The police alone hear the announcement: it runs on their channel before they join.
    assert "Playback(hotline/police-announce)" in contexts["hotline-police-announce"]


async def test_another_police_number_and_codes(engine, tmp_path):
    settings = Settings(var_dir=tmp_path, crisis=CrisisSettings(
        police_number="1399486110", police_feature_code="#9", police_attempts=2))
    from hotline.asterisk.plan import load_plan
    from hotline.asterisk.render import render
    from hotline.db.engine import session_factory
    from hotline.demo import seed_demo
    from tests.db.test_transfer_render import NOW

    async with session_factory(engine)() as session:
        await seed_demo(session, site_code="default", now=NOW)
        plan = await load_plan(session, now=NOW, default_site="default", wait_timeout=90,
                               crisis_wait_timeout=45)
    files = render(plan, settings)
    assert "hotline-police => #9,self," in files["features.conf"]
    dial = _contexts(files["extensions.conf"])["hotline-police-dial"]
    assert "Dial(PJSIP/1399486110@carrier," in dial and ">= 2]?failed" in dial


@pytest.mark.parametrize("field, value", [
    ("police_feature_code", "*0\r\nhotline-x => 1"), ("police_feature_code", ""),
    ("high_risk_feature_code", "*123456789"), ("police_number", "110,evil"),
    ("supervisor_number", "1380000\n"),
])
def test_bad_crisis_settings_are_refused(field, value):
    with pytest.raises(ValidationError):
        CrisisSettings(**{field: value})


async def test_the_police_key_asks_the_backend_and_else_dials_110_itself(engine, tmp_path):
    _plan, files = await _render(engine, tmp_path)
    key = _contexts(files["extensions.conf"])["hotline-police-key"]
    # The backend is asked first; only a ready backend gets the event (and moves the call).
    assert key.index("/police-ready)") < key.index("UserEvent(HotlinePoliceKey,")
    assert '"${AGISTATUS}" = "SUCCESS" & "${HOTLINE_POLICE_READY}" = "1"]?backend)' in key
    # Otherwise 110 is dialled into this very call, through the same 110 leg (retries,
    # the announcement for the police alone), kept whole (/n) so it can record.
    assert "@hotline-police-dial/n,exten,hotline-police-fallback,s,1,,av(" in key
    assert "HOTLINE_POLICE_JOIN=${BRIDGEPEER}" in key
    fallback = _contexts(files["extensions.conf"])["hotline-police-fallback"]
    assert ("MixMonitor(/var/spool/asterisk/monitor/hotline/${HOTLINE_POLICE_RECORDING}.wav,a)"
            in fallback)
    # One 110 leg at a time on this path, and its failure says nobody was alerted.
    assert "@hotline-police-alone)} > 0]?done)" in key
    dial = _contexts(files["extensions.conf"])["hotline-police-dial"]
    assert "Set(GROUP(hotline-police-alone)=" in dial
    assert "(alone),Playback(hotline/police-failed-alone)" in dial
    assert fallback.index("MixMonitor(") < fallback.index("BridgeAdd(${HOTLINE_POLICE_JOIN})")
