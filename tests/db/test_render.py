from datetime import UTC, datetime

from hotline.asterisk.plan import load_plan
from hotline.asterisk.render import render
from hotline.config import Settings
from hotline.db.engine import session_factory
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


async def test_rendered_queues_follow_tiers_and_shifts(engine, tmp_path):
    _seeded, plan = await _plan(engine)
    files = render(plan, Settings(var_dir=tmp_path))
    queues = files["queues.conf"]
    crisis = queues.split("[crisis]")[1].split("\n[")[0]
    assert "member => PJSIP/c1001,0," in crisis
    assert "member => PJSIP/c1002,5," in crisis
    assert "defaultrule=hotline-crisis-widen" in crisis
    assert "strategy=ringall" in crisis
    assert "joinempty=unavailable,invalid" in crisis


async def test_nobody_on_duty_renders_empty_queues_and_the_oncall_route(engine, tmp_path):
    _seeded, plan = await _plan(engine, now=datetime(2027, 6, 1, tzinfo=UTC))
    files = render(plan, Settings(var_dir=tmp_path))
    assert "member =>" not in files["queues.conf"]
    assert "Dial(PJSIP/13800000001@carrier," in files["extensions.conf"]


async def test_every_dialplan_path_ends_with_a_person(engine, tmp_path):
    _seeded, plan = await _plan(engine)
    dialplan = render(plan, Settings(var_dir=tmp_path))["extensions.conf"]
    assert "Hangup()" not in dialplan.split("[hotline-oncall]")[0]
    assert "exten => i,1,Goto(hotline-fallback" in dialplan
    assert "GotoIf($[\"${AGISTATUS}\" != \"SUCCESS\"" in dialplan
    assert "GotoIfTime(" not in dialplan


async def test_manager_user_is_loopback_and_least_privilege(engine, tmp_path):
    _seeded, plan = await _plan(engine)
    settings = Settings(var_dir=tmp_path)
    settings.ami.secret = "s3cret"
    manager = render(plan, settings)["manager.conf"]
    assert "permit=127.0.0.1/255.255.255.255" in manager
    assert "deny=0.0.0.0/0.0.0.0" in manager
    write = next(line for line in manager.splitlines() if line.startswith("write="))
    assert not {"system", "command", "config", "originate", "all"} & set(write[6:].split(","))


async def test_counsellor_secrets_reach_pjsip(engine, tmp_path):
    seeded, plan = await _plan(engine)
    pjsip = render(plan, Settings(var_dir=tmp_path))["pjsip.conf"]
    for counsellor in seeded:
        assert f"password={counsellor.secret}" in pjsip
    assert "match=127.0.0.2" in pjsip
