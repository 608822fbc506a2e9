"""The transfer contexts rendered from the database: only the site's codes, no free
dialling, and a caller sent on is never hung up on."""

from datetime import UTC, datetime

from sqlalchemy import select

from hotline.asterisk.plan import load_plan
from hotline.asterisk.render import render
from hotline.config import Settings
from hotline.db.engine import session_factory
from hotline.db.models import Counsellor, Site, TransferTarget
from hotline.demo import seed_demo

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


async def _render(engine, tmp_path, change=None):
    async with session_factory(engine)() as session:
        await seed_demo(session, site_code="default", now=NOW)
        if change is not None:
            await change(session)
            await session.commit()
        plan = await load_plan(session, now=NOW, default_site="default", wait_timeout=90,
                               crisis_wait_timeout=45)
    return plan, render(plan, Settings(var_dir=tmp_path))


def _contexts(dialplan: str) -> dict[str, str]:
    contexts: dict[str, str] = {}
    name = ""
    for line in dialplan.splitlines():
        if line.startswith("[") and line.rstrip().endswith("]"):
            name = line.strip()[1:-1]
            contexts[name] = ""
        elif name and not line.lstrip().startswith(";"):
            contexts[name] += line + "\n"
    return contexts


async def test_the_sites_transfer_codes(engine, tmp_path):
    plan, files = await _render(engine, tmp_path)
    assert plan.warnings == []
    contexts = _contexts(files["extensions.conf"])
    site = contexts["hotline-transfer-default"]
    assert site.startswith("include => hotline-transfer\n")
    for code, queue in (("70", "duty"), ("71", "psych"), ("72", "legal"), ("73", "crisis")):
        assert f"exten => {code},1,Set(HOTLINE_QUEUE={queue})\n" \
               f" same => n,Goto(hotline-queue,{queue},1)\n" in site
    assert "exten => 91,1,Dial(PJSIP/12345@carrier,30)" in site
    assert "exten => 92,1,Dial(PJSIP/13800000003@carrier,30)" in site
    assert "exten => i,1,Goto(hotline-transfer,failed,1)" in site
    shared = contexts["hotline-transfer"]
    for extension in ("1001", "1002", "1003"):
        assert f"exten => {extension},1,Dial(PJSIP/c{extension},30,tg)" in shared
    # No free dialling: every extension is a literal code, no Dial takes a dialled number.
    for text in (site, shared):
        assert "exten => _" not in text
        assert "${EXTEN" not in text


async def test_counsellors_inherit_the_transfer_context_and_may_transfer(engine, tmp_path):
    _plan, files = await _render(engine, tmp_path)
    queue = _contexts(files["extensions.conf"])["hotline-queue"]
    for name in ("crisis", "psych", "legal", "duty"):
        section = queue.split(f"exten => {name},1,")[1].split("exten => ")[0]
        assert section.index("Set(__TRANSFER_CONTEXT=hotline-transfer-default)") < section.index(
            f"Queue({name},ctb(hotline-counsellor-leg^s^1),")


async def test_a_leg_nobody_answers_never_hangs_up_a_caller_sent_on(engine, tmp_path):
    _plan, files = await _render(engine, tmp_path)
    failed = _contexts(files["extensions.conf"])["hotline-transfer"].split(
        "exten => failed,1,")[1]
    # Only the consultation leg of an attended transfer (a Local channel) ends there.
    assert failed.startswith('GotoIf($["${CHANNEL(channeltype)}" = "Local"]?end)')
    before_end = failed.split("(end),Hangup()")[0]
    assert "Goto(hotline-queue,${HOTLINE_QUEUE},1)" in before_end
    assert "hotline-fallback,${HOTLINE_SITE},1" in before_end


async def test_codes_that_cannot_be_dialled_are_left_out_with_a_warning(engine, tmp_path):
    async def change(session):
        site = await session.scalar(select(Site).where(Site.code == "default"))
        session.add(TransferTarget(site_id=site.id, code="3*", label="bad", number="110"))
        session.add(TransferTarget(site_id=site.id, code="4", label="no number", number="--"))
        c1003 = await session.scalar(select(Counsellor).where(
            Counsellor.sip_username == "c1003"))
        c1003.extension = "9003"  # would shadow the outside lines' codes

    plan, files = await _render(engine, tmp_path, change)
    assert len(plan.warnings) == 3, plan.warnings
    assert [c.extension for c in plan.colleagues] == ["1001", "1002"]
    dialplan = files["extensions.conf"]
    # (110 is dialled by the police bridge, never as a transfer code.)
    transfers = "".join(text for name, text in _contexts(dialplan).items()
                        if name.startswith("hotline-transfer"))
    assert "Dial(PJSIP/110@carrier" not in transfers
    assert "exten => 9003," not in dialplan and "exten => 94," not in dialplan


async def test_the_listener_hears_of_transfers(engine, tmp_path):
    _plan, files = await _render(engine, tmp_path)
    manager = files["manager.conf"]
    assert "eventfilter(action(include),name(BlindTransfer))=" in manager
    assert "eventfilter(action(include),name(AttendedTransfer))=" in manager
    assert ("eventfilter(action(include),name(DialBegin),header(Context),"
            "method(starts_with))=hotline-transfer") in manager
    # BlindTransfer and Atxfer need the call class; the channel list reporting.
    write = next(line for line in manager.splitlines() if line.startswith("write="))
    assert {"call", "reporting"} <= set(write.removeprefix("write=").split(","))
