from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from hotline.asterisk.plan import load_plan
from hotline.asterisk.render import render
from hotline.config import Settings
from hotline.db.engine import session_factory
from hotline.db.models import Site
from hotline.demo import seed_demo

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


async def _plan(engine, now=NOW):
    async with session_factory(engine)() as session:
        seeded = await seed_demo(session, site_code="default", now=NOW)
        plan = await load_plan(session, now=now, default_site="default", wait_timeout=90,
                               crisis_wait_timeout=45)
    return seeded, plan


async def test_demo_seed_is_idempotent_and_keeps_secrets(engine):
    async with session_factory(engine)() as session:
        first = await seed_demo(session, site_code="default", now=NOW)
    async with session_factory(engine)() as session:
        second = await seed_demo(session, site_code="default", now=NOW)
    assert [c.secret for c in first] == [c.secret for c in second]
    assert len({c.secret for c in first}) == 3


async def test_rendered_queues_leave_members_to_the_backend(engine, tmp_path):
    _seeded, plan = await _plan(engine)
    files = render(plan, Settings(var_dir=tmp_path))
    queues = files["queues.conf"]
    crisis = queues.split("[crisis]")[1].split("\n[")[0]
    # Members are dynamic: added, paused and removed over AMI as the roster changes.
    assert "member =>" not in queues
    assert "defaultrule=hotline-widen-crisis" in crisis
    assert "strategy=ringall" in crisis
    assert "joinempty=paused,unavailable,invalid" in crisis
    assert "wrapuptime=0" in crisis
    rules = files["queuerules.conf"]
    assert "[hotline-widen-crisis]\npenaltychange => 15,10" in rules


async def test_queue_settings_and_the_backup_line_are_rendered(engine, tmp_path):
    async with session_factory(engine)() as session:
        await seed_demo(session, site_code="default", now=NOW)
        site = await session.scalar(select(Site).where(Site.code == "default")
                                    .options(selectinload(Site.queues)))
        site.backup_number = "12355001"
        for queue in site.queues:
            queue.wrapup_seconds = 20 if queue.kind.value == "psych" else None
            queue.widen_after_seconds = 8 if queue.kind.value == "crisis" else None
        await session.commit()
        plan = await load_plan(session, now=NOW, default_site="default", wait_timeout=90,
                               crisis_wait_timeout=45, wrapup=10, widen_after=15)
    files = render(plan, Settings(var_dir=tmp_path))
    psych = files["queues.conf"].split("[psych]")[1].split("\n[")[0]
    assert "wrapuptime=20" in psych
    assert "wrapuptime=10" in files["queues.conf"].split("[legal]")[1].split("\n[")[0]
    assert "penaltychange => 8,10" in files["queuerules.conf"]
    oncall = _contexts(files["extensions.conf"])["hotline-oncall"]
    # The backup line first, then each on-call mobile unless it is busy with another caller.
    assert oncall.index("Dial(PJSIP/12355001@carrier,") < oncall.index(
        "Dial(PJSIP/13800000001@carrier,")
    assert "GROUP_COUNT(13800000001@hotline-oncall)" in oncall


async def test_nobody_on_duty_still_renders_the_oncall_route(engine, tmp_path):
    _seeded, plan = await _plan(engine, now=datetime(2027, 6, 1, tzinfo=UTC))
    files = render(plan, Settings(var_dir=tmp_path))
    assert "member =>" not in files["queues.conf"]
    assert "Dial(PJSIP/13800000001@carrier," in files["extensions.conf"]


async def test_every_dialplan_path_ends_with_a_person(engine, tmp_path):
    _seeded, plan = await _plan(engine)
    dialplan = render(plan, Settings(var_dir=tmp_path))["extensions.conf"]
    contexts = _contexts(dialplan)
    # A caller is hung up on only after a person: the counsellor hung up (survey), the
    # message was recorded, the forwarded or on-call line answered.
    for name in ("hotline-inbound", "hotline-ivr", "hotline-route", "hotline-queue",
                 "hotline-fallback"):
        assert "Hangup()" not in contexts[name], name
    assert "Record(" in contexts["hotline-voicemail"].split("Hangup()")[0]
    assert 'GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)' in contexts["hotline-forward"]
    assert "exten => i,1,Goto(hotline-fallback" in dialplan
    # FastAGI, then the classic AGI script, then the default route.
    decide = contexts["hotline-ivr"].split("exten => decide")[1]
    assert decide.index("/ivr,") < decide.index("hotline-ivr-classic") < decide.index(
        "Goto(hotline-fallback")
    assert 'GotoIf($["${AGISTATUS}" = "SUCCESS" & "${HOTLINE_ROUTE}" != ""]' in decide
    assert "GotoIfTime(" not in dialplan


async def test_the_night_attendant_listens_without_ever_hanging_up(engine, tmp_path):
    _seeded, plan = await _plan(engine)
    settings = Settings(var_dir=tmp_path, crisis={"attendant_port": 4599,
                                                  "attendant_listen_seconds": 20})
    route = _contexts(render(plan, settings)["extensions.conf"])["hotline-route"]
    listen = route.split("exten => listen,1")[1].split("\nexten => T")[0]
    # AudioSocket under TryExec: a refused or broken stream returns to the dialplan.
    assert "TryExec(AudioSocket(${HOTLINE_LISTEN_ID},127.0.0.1:4599))" in listen
    assert "Set(TIMEOUT(absolute)=35)" in listen
    # A keyword: the crisis route at once; else the menu after listening, or (stream
    # failed) the menu offering crisis by key.
    assert listen.index('"${HOTLINE_ATTENDANT_RESULT}" = "crisis"') < listen.index(
        "Goto(hotline-ivr,decide,1)")
    assert '${IF($["${TRYSTATUS}" = "SUCCESS"]?${HOTLINE_RESUME}:${HOTLINE_LISTEN_FAILED})}' \
        in listen
    assert "Goto(hotline-route,${HOTLINE_ROUTE},1)" in listen
    # A backend that never ends the stream: the absolute timeout's T extension, the same menu.
    timeout = route.split("exten => T,1")[1]
    assert "${HOTLINE_LISTEN_FAILED}" in timeout and "Goto(hotline-ivr,decide,1)" in timeout


def _contexts(dialplan: str) -> dict[str, str]:
    contexts: dict[str, str] = {}
    name = ""
    for line in dialplan.splitlines():
        if line.startswith("[") and line.rstrip().endswith("]"):
            name = line.strip()[1:-1]
            contexts[name] = ""
        elif name:
            contexts[name] += line + "\n"
    return contexts


async def test_manager_user_is_loopback_and_least_privilege(engine, tmp_path):
    _seeded, plan = await _plan(engine)
    settings = Settings(var_dir=tmp_path)
    settings.ami.secret = "s3cret"
    manager = render(plan, settings)["manager.conf"]
    assert "permit=127.0.0.1/255.255.255.255" in manager
    assert "deny=0.0.0.0/0.0.0.0" in manager
    write = next(line for line in manager.splitlines() if line.startswith("write="))
    assert not {"system", "command", "config", "originate", "all"} & set(write[6:].split(","))
    # The callback dialler's own user: Originate only, from loopback, reading no events.
    dialer = manager.split(f"[{settings.ami.dialer_username}]", 1)[1].split("\n[", 1)[0]
    lines = set(dialer.strip().splitlines())
    assert {"read=", "write=originate", "deny=0.0.0.0/0.0.0.0",
            "permit=127.0.0.1/255.255.255.255"} <= lines
    assert not any(line.startswith("eventfilter") for line in lines)


async def test_counsellor_secrets_reach_pjsip(engine, tmp_path):
    seeded, plan = await _plan(engine)
    pjsip = render(plan, Settings(var_dir=tmp_path))["pjsip.conf"]
    for counsellor in seeded:
        assert f"password={counsellor.secret}" in pjsip
    assert "match=127.0.0.2" in pjsip


def _section(conf: str, name: str) -> str:
    return conf.split(f"[{name}]")[1].split("\n[")[0]


async def test_queue_announcements_in_mandarin(engine, tmp_path):
    _seeded, plan = await _plan(engine)
    queues = render(plan, Settings(var_dir=tmp_path))["queues.conf"]
    crisis = _section(queues, "crisis")
    # A caller in crisis hears no position, only that someone is coming, every ~20 s.
    assert "announce-position=no" in crisis
    assert "announce-holdtime=no" in crisis
    assert "announce-frequency=0" in crisis
    assert "periodic-announce=hotline/crisis-hold" in crisis
    assert "periodic-announce-frequency=15" in crisis
    # app_queue spares the first caller (the one whose specialists are ringing) otherwise.
    assert "announce-to-first-user=yes" in crisis
    for name in ("psych", "legal"):
        consultation = _section(queues, name)
        assert "announce-position=yes" in consultation
        assert "announce-holdtime=yes" in consultation
        assert "announce-frequency=60" in consultation
        # … and, after callback_offer_seconds, the offer to be called back in their turn
        # (a key exits to hotline-queue-callback).
        assert "periodic-announce=hotline/queue-callback-offer" in consultation
        assert "periodic-announce-frequency=30" in consultation
        assert "context=hotline-queue-callback" in consultation
        assert "crisis-hold" not in consultation
        assert "announce-to-first-user" not in consultation
    # Never in the crisis queue; and none anywhere when the offer is off.
    assert "context=" not in crisis and "queue-callback" not in crisis
    settings = Settings(var_dir=tmp_path)
    settings.queues.callback_offer_seconds = 0
    without = render(plan, settings)
    assert "context=hotline-queue-callback" not in without["queues.conf"]
    assert "periodic-announce=hotline/queue-all-busy" in _section(without["queues.conf"], "psych")
    assert "[hotline-queue-callback]" not in without["extensions.conf"]


async def test_every_hotline_sound_the_config_plays_is_built_in(engine, tmp_path):
    import re

    from hotline.asterisk.prompts import BUILTIN_PROMPTS

    _seeded, plan = await _plan(engine)
    files = render(plan, Settings(var_dir=tmp_path))
    played = set()
    for name in ("extensions.conf", "queues.conf"):
        for line in files[name].splitlines():
            if not line.lstrip().startswith(";"):
                played |= set(re.findall(r"hotline/[a-z0-9-]+(?:/[a-z0-9-]+)*", line))
    assert {"hotline/connecting", "hotline/crisis-hold", "hotline/queue-all-busy"} <= played
    assert played <= set(BUILTIN_PROMPTS)


async def test_a_mobile_seat_dials_the_mobile_through_the_carrier(engine, tmp_path):
    from hotline.db.models import Counsellor, Seat, Tier

    async with session_factory(engine)() as session:
        await seed_demo(session, site_code="default", now=NOW)
        site = await session.scalar(select(Site).where(Site.code == "default"))
        session.add(Counsellor(site_id=site.id, name="赵老师", tier=Tier.CONSULTATION,
                               seat=Seat.MOBILE, skills=["psych"], sip_username="c1004",
                               sip_secret="x" * 32, mobile_number="13900001004"))
        await session.commit()
        plan = await load_plan(session, now=NOW, default_site="default", wait_timeout=90,
                               crisis_wait_timeout=45)
    dialplan = render(plan, Settings(var_dir=tmp_path))["extensions.conf"]
    mobile = _contexts(dialplan)["hotline-mobile-seat"]
    assert "exten => c1004,1,Dial(PJSIP/13900001004@carrier," in mobile
