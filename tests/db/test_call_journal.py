import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from hotline.calls.storage import CallJournal
from hotline.db.models import Call, CallEvent

T0 = datetime(2026, 12, 1, 1, 2, 3, tzinfo=UTC)


async def _journal(engine):
    journal = CallJournal(engine=engine, node="test")
    await journal.start()
    return journal


async def test_agi_and_ami_changes_meet_in_one_call(engine):
    journal = await _journal(engine)
    try:
        # The AMI listener may see the channel before the IVR writes; both name the linkedid.
        call_id = journal.record("1700000000.1", T0, event="channel_created", source="ami",
                                 data={}, dialed_number="12355")
        assert journal.record("1700000000.1", T0 + timedelta(seconds=1), event="route",
                              source="agi", data={"queue": "psych"}, route="queue",
                              queue="psych", digits="1") == call_id
        journal.record("1700000000.1", T0 + timedelta(seconds=9), event="connect", source="ami",
                       data={}, outcome="answered", wait_seconds=3.5, answered_by="李老师")
        await journal.flush()
    finally:
        await journal.close()
    async with engine.connect() as connection:
        call = (await connection.execute(select(Call))).one()
        events = (await connection.execute(select(CallEvent.kind).order_by(CallEvent.id))).all()
    assert call.id == call_id
    assert call.started_at == T0
    assert (call.route, call.queue, call.digits) == ("queue", "psych", "1")
    assert (call.outcome, call.wait_seconds, call.answered_by) == ("answered", 3.5, "李老师")
    assert [row[0] for row in events] == ["channel_created", "route", "connect"]


async def test_caller_names_are_stored_intact(engine):
    names = ["张三", 'O"Brien \\ "quoted"', "line1\r\nagi_arg_1: injected", "🙂 emoji 小明"]
    journal = await _journal(engine)
    try:
        for index, name in enumerate(names):
            journal.record(f"1700000001.{index}", T0, event="ivr_start", source="agi",
                           data={"name": name}, caller_name=name)
        await journal.flush()
    finally:
        await journal.close()
    async with engine.connect() as connection:
        stored = (await connection.execute(select(Call.caller_name).order_by(Call.linkedid))).all()
    assert [row[0] for row in stored] == names


async def test_many_concurrent_calls_are_all_written(engine):
    journal = await _journal(engine)

    async def call(index: int) -> None:
        for step in range(5):
            journal.record(f"1700000002.{index}", T0, event=f"step{step}", source="ami", data={})
            await asyncio.sleep(0)

    try:
        await asyncio.gather(*(call(index) for index in range(200)))
        await journal.flush()
    finally:
        await journal.close()
    async with engine.connect() as connection:
        calls = (await connection.execute(select(Call.id))).all()
        events = (await connection.execute(select(CallEvent.id))).all()
    assert (len(calls), len(events)) == (200, 1000)
    assert journal.stats.batches < 1000


async def test_changes_wait_while_the_database_is_unreachable(engine):
    from hotline.db.engine import create_engine_for

    broken = create_engine_for("postgresql://nobody@127.0.0.1:1/none")
    journal = CallJournal(engine=broken, node="test", retry_seconds=0.05)
    await journal.start()
    journal.record("1700000003.1", T0, event="ivr_start", source="agi", data={})
    await asyncio.sleep(0.5)
    assert journal.stats.failures >= 1
    assert journal._queue.qsize() == 0  # the batch is held by the writer, being retried
    await journal.close()
    await broken.dispose()


async def test_fill_never_overwrites_a_stronger_source(engine):
    journal = await _journal(engine)
    try:
        journal.record("1700000004.1", T0, event="ivr_start", source="agi", data={},
                       caller_name='O"Brien')
        journal.record("1700000004.1", T0, event="channel_created", source="ami", data={},
                       fill={"caller_name": 'O\\"Brien', "caller_number": "13900000000"})
        await journal.flush()
        journal.record("1700000004.1", T0, event="late", source="ami", data={},
                       fill={"caller_name": "other"})
        await journal.flush()
    finally:
        await journal.close()
    async with engine.connect() as connection:
        call = (await connection.execute(select(Call))).one()
    assert (call.caller_name, call.caller_number) == ('O"Brien', "13900000000")
