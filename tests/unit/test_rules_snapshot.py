"""The rules snapshot for the classic AGI fallback: format, files, clock, call id."""

from __future__ import annotations

import os
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from agi.classic import SnapshotError, load_clock, load_snapshot, snapshot_path
from hotline.config import ClockSettings, Settings
from hotline.rules.snapshot_files import (
    remove_snapshot,
    snapshot_directory,
    write_clock_file,
    write_snapshot,
)
from routing.defaults import default_rules
from routing.ids import call_id_for
from routing.snapshot import ClockSetting, RulesSnapshot, snapshot_file_name
from tests.unit.routing_support import official_calendar

WRITTEN = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _snapshot(site: str = "default", version: int = 4) -> RulesSnapshot:
    return RulesSnapshot.create(
        site_code=site, rules_version=version, rules=default_rules(), node="node-a",
        written_at=WRITTEN, calendar=official_calendar((2025, 2026)),
        sounds={"hotline/menu": "hotline/site-1/menu-v2"},
        high_risk_numbers=["+86 138-0000-0001", "anonymous"],
        abusive_numbers=["008613800000002"])


def test_a_snapshot_round_trips_through_its_file(tmp_path: Path) -> None:
    snapshot = _snapshot()
    path = write_snapshot(tmp_path, snapshot, default=True)
    assert path == tmp_path / "default.json"
    loaded = load_snapshot(tmp_path, "default")
    assert loaded == snapshot
    assert loaded.holiday_calendar() == official_calendar((2025, 2026))
    assert loaded.rules == default_rules()
    assert loaded.high_risk_numbers == ("13800000001",)  # normalised; withheld dropped
    assert loaded.sound("hotline/menu") == "hotline/site-1/menu-v2"
    assert loaded.sound("hotline/welcome") == "hotline/welcome"


def test_an_unchanged_snapshot_is_not_rewritten(tmp_path: Path) -> None:
    path = write_snapshot(tmp_path, _snapshot())
    inode = path.stat().st_ino
    write_snapshot(tmp_path, _snapshot().model_copy(update={"written_at": datetime.now(UTC)}))
    assert path.stat().st_ino == inode
    write_snapshot(tmp_path, _snapshot(version=9))
    assert path.stat().st_ino != inode
    assert load_snapshot(tmp_path, "default").rules_version == 9


def test_files_are_0640_and_no_temp_file_is_left(tmp_path: Path) -> None:
    write_snapshot(tmp_path, _snapshot(), default=True)
    write_snapshot(tmp_path, _snapshot(version=5), default=True)
    assert stat.S_IMODE((tmp_path / "default.json").stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_default.json", "default.json"]
    assert load_snapshot(tmp_path, "default").rules_version == 5


def test_the_default_link_is_relative_and_follows_the_default_site(tmp_path: Path) -> None:
    write_snapshot(tmp_path, _snapshot("jiangxi"), default=True)
    write_snapshot(tmp_path, _snapshot("fujian", version=7))
    assert os.readlink(tmp_path / "_default.json") == "jiangxi.json"
    assert load_snapshot(tmp_path, "fujian").rules_version == 7
    assert load_snapshot(tmp_path, "yunnan").site_code == "jiangxi"
    assert snapshot_path(tmp_path, "../fujian") == tmp_path / "_default.json"
    write_snapshot(tmp_path, _snapshot("fujian", version=8), default=True)
    assert load_snapshot(tmp_path, "yunnan").rules_version == 8
    remove_snapshot(tmp_path, "jiangxi")
    assert load_snapshot(tmp_path, "jiangxi").site_code == "fujian"


def test_no_snapshot_is_an_error_not_a_guess(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="no rules snapshot"):
        load_snapshot(tmp_path, "default")
    (tmp_path / "default.json").write_text("[]")
    with pytest.raises(SnapshotError, match="not a rules snapshot"):
        load_snapshot(tmp_path, "default")


@pytest.mark.parametrize("code", ["", "_default", "../x", "a/b", "a" * 33, "x.json"])
def test_only_site_codes_name_snapshot_files(code: str) -> None:
    with pytest.raises(ValueError):
        snapshot_file_name(code)


def test_sound_names_cannot_break_an_agi_command() -> None:
    for sound in ('a"b', "a b", "a\nb", ""):
        with pytest.raises(ValidationError):
            _snapshot().model_validate({**_snapshot().model_dump(), "sounds": {"x": sound}})


def test_caller_flags_match_any_form_of_the_number() -> None:
    snapshot = _snapshot()
    assert snapshot.caller("+8613800000001").high_risk
    assert snapshot.caller("138 0000 0001").high_risk
    assert not snapshot.caller("138 0000 0001").abusive
    assert snapshot.caller("13800000002").abusive
    assert snapshot.caller("anonymous") == snapshot.caller("")
    assert not snapshot.caller("").high_risk


def test_clock_setting_mirrors_the_backend_clock() -> None:
    fixed = ClockSetting(fixed=datetime(2026, 12, 1, 9, 0))  # naive: Asia/Shanghai
    assert fixed.now() == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    real = datetime(2026, 1, 1, tzinfo=UTC)
    assert ClockSetting(offset_seconds=-3600).now(real) == real - timedelta(hours=1)
    assert abs((ClockSetting().now() - datetime.now(UTC)).total_seconds()) < 2
    with pytest.raises(ValidationError):
        ClockSetting(timezone="Mars/Olympus")


def test_the_clock_file_carries_the_backend_setting(tmp_path: Path) -> None:
    settings = Settings(rules={"snapshot_dir": tmp_path / "rules"},
                        clock=ClockSettings(fixed=datetime(2027, 2, 10, 3, 0),
                                            timezone="Asia/Shanghai"))
    path = write_clock_file(settings)
    assert path == tmp_path / "rules" / "clock.json"
    clock, problem = load_clock(tmp_path / "rules")
    assert problem == ""
    assert clock.now() == datetime(2027, 2, 9, 19, 0, tzinfo=UTC)
    assert load_clock(tmp_path / "nowhere") == (ClockSetting(), "")


def test_the_snapshot_directory_defaults_to_the_sandbox(tmp_path: Path) -> None:
    settings = Settings(asterisk={"chroot_dir": tmp_path / "chroot"})
    assert snapshot_directory(settings) == tmp_path / "chroot/var/lib/hotline12355/rules"
    settings = Settings(rules={"snapshot_dir": tmp_path / "shared"})
    assert snapshot_directory(settings) == tmp_path / "shared"


def test_the_call_id_is_the_same_with_or_without_the_database_models() -> None:
    from hotline.db import models

    assert models.call_id_for is call_id_for
    # the id the database already holds for this linkedid: unchanged by the move
    assert call_id_for("sandbox", "1764300000.1") == "4a32aa5c92d95ce8a76c0c10f61f60da"
    assert models.CALL_ID_NAMESPACE.hex == "6f1c1d2e12d353559a55123551235500"


def test_written_at_must_be_aware() -> None:
    with pytest.raises(ValidationError):
        RulesSnapshot.create(site_code="x", rules_version=1, rules=default_rules(), node="n",
                             written_at=datetime(2026, 1, 1), calendar=official_calendar(()))
    assert _snapshot().holidays[date(2026, 10, 1)]
