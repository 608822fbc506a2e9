from datetime import UTC, datetime, timedelta

from hotline.clock import Clock
from hotline.config import Settings


def test_environment_overrides_toml_which_overrides_defaults(tmp_path, monkeypatch):
    toml = tmp_path / "hotline.toml"
    toml.write_text('[web]\nport = 9000\nhost = "127.0.0.1"\n[ami]\nport = 6000\n')
    monkeypatch.setenv("HOTLINE_CONFIG", str(toml))
    monkeypatch.setenv("HOTLINE_AMI__PORT", "7000")
    settings = Settings()
    assert settings.web.port == 9000
    assert settings.ami.port == 7000
    assert settings.agi.port == 4573


def test_defaults_are_loopback_and_sqlite_under_var(tmp_path, monkeypatch):
    monkeypatch.delenv("HOTLINE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.ami.host == settings.agi.host == settings.web.host == "127.0.0.1"
    assert settings.database_url == f"sqlite:///{tmp_path / 'var' / 'hotline.sqlite3'}"
    assert settings.redis.url.startswith("redis://127.0.0.1:6379")


def test_fixed_clock_from_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOTLINE_CLOCK__FIXED", "2027-02-10T03:00:00+08:00")
    clock = Clock.from_settings(Settings().clock)
    assert clock.now() == datetime(2027, 2, 9, 19, 0, tzinfo=UTC)
    assert clock.local_now().hour == 3


def test_offset_clock_runs():
    clock = Clock(offset=timedelta(hours=-5))
    expected = datetime.now(UTC) - timedelta(hours=5)
    assert abs((clock.now() - expected).total_seconds()) < 2


def test_naive_fixed_instant_is_read_in_the_hotline_time_zone():
    clock = Clock(fixed=datetime(2026, 12, 1, 9, 0))
    assert clock.now() == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)


def test_an_instant_stamped_by_a_real_clock_is_shifted_onto_an_offset_clock() -> None:
    from datetime import UTC, datetime, timedelta

    from hotline.clock import Clock

    stamped = datetime(2026, 11, 29, 15, 48, tzinfo=UTC)
    offset = Clock(offset=timedelta(hours=31, minutes=42))
    assert offset.from_real(stamped) == datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    fixed = Clock(fixed=datetime(2027, 1, 1, tzinfo=UTC))
    assert fixed.from_real(stamped) == stamped
