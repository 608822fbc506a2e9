"""Cloud seats in the rendered PJSIP configuration, the lock-out AMI user, SIP secrets."""

from datetime import UTC, datetime

from hotline.asterisk.plan import load_plan
from hotline.asterisk.render import render
from hotline.config import Settings
from hotline.db.engine import session_factory
from hotline.demo import seed_demo
from hotline.secrets import new_sip_secret

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


async def _plan(engine):
    async with session_factory(engine)() as session:
        seeded = await seed_demo(session, site_code="default", now=NOW)
        plan = await load_plan(session, now=NOW, default_site="default", wait_timeout=90,
                               crisis_wait_timeout=45)
    return seeded, plan


def _sections(conf: str, name: str) -> list[str]:
    """Every section called ``name`` (an endpoint, its auth and its AOR share the name)."""
    parts = conf.split(f"\n[{name}]\n")[1:]
    return [part.split("\n[")[0] for part in parts]


def _typed(conf: str, name: str, kind: str) -> list[str]:
    section = next(s for s in _sections(conf, name) if f"type={kind}\n" in s)
    return [line for line in section.splitlines() if line and not line.startswith(";")]


async def test_demo_seats_reach_the_plan(engine):
    seeded, plan = await _plan(engine)
    seats = {e.username: e.seat for e in plan.endpoints}
    assert seats == {"c1001": "cloud", "c1002": "on_site", "c1003": "cloud"}
    assert {c.username: c.seat for c in seeded} == seats


async def test_tls_transport_on_the_configured_port(engine, tmp_path):
    _seeded, plan = await _plan(engine)
    settings = Settings(var_dir=tmp_path)
    settings.asterisk.tls_port = 5071
    settings.asterisk.tls_cert_file = "/srv/pki/sip.example.org.crt"
    settings.asterisk.tls_key_file = "/srv/pki/sip.example.org.key"
    pjsip = render(plan, settings)["pjsip.conf"]
    tls = _typed(pjsip, "hotline-tls", "transport")
    assert "protocol=tls" in tls
    assert "bind=0.0.0.0:5071" in tls
    assert "cert_file=/srv/pki/sip.example.org.crt" in tls
    assert "priv_key_file=/srv/pki/sip.example.org.key" in tls
    assert "method=sslv23" in tls  # TLS 1.2 and 1.3, not pjproject's TLS 1.0 default
    # Desk phones on site keep their UDP transport.
    assert "protocol=udp" in _typed(pjsip, "hotline-udp", "transport")


async def test_cloud_seat_requires_tls_and_srtp_by_default(engine, tmp_path):
    _seeded, plan = await _plan(engine)
    settings = Settings(var_dir=tmp_path)
    assert settings.asterisk.cloud_seat_tls_required is True
    pjsip = render(plan, settings)["pjsip.conf"]
    for user in ("c1001", "c1003"):
        endpoint = _typed(pjsip, user, "endpoint")
        for line in ("transport=hotline-tls", "media_encryption=sdes",
                     "media_encryption_optimistic=no", "rewrite_contact=yes",
                     "force_rport=yes", "rtp_symmetric=yes", "direct_media=no",
                     "ice_support=yes"):
            assert line in endpoint, (user, line)
        aor = _typed(pjsip, user, "aor")
        assert "max_contacts=1" in aor
        assert "remove_existing=yes" in aor
        assert "qualify_frequency=30" in aor
    desk = _typed(pjsip, "c1002", "endpoint")
    assert "transport=hotline-udp" in desk
    assert not any(line.startswith(("media_encryption", "ice_support")) for line in desk)
    assert "qualify_frequency=0" in _typed(pjsip, "c1002", "aor")


async def test_relaxed_cloud_seat_offers_srtp_and_takes_udp(engine, tmp_path):
    _seeded, plan = await _plan(engine)
    settings = Settings(var_dir=tmp_path)
    settings.asterisk.cloud_seat_tls_required = False
    settings.asterisk.cloud_seat_qualify_seconds = 0
    pjsip = render(plan, settings)["pjsip.conf"]
    endpoint = _typed(pjsip, "c1001", "endpoint")
    assert not any(line.startswith("transport=") for line in endpoint)
    assert "media_encryption=sdes" in endpoint
    assert "media_encryption_optimistic=yes" in endpoint
    assert "qualify_frequency=0" in _typed(pjsip, "c1001", "aor")


async def test_lockout_notifier_may_only_send_user_events(engine, tmp_path):
    _seeded, plan = await _plan(engine)
    settings = Settings(var_dir=tmp_path)
    settings.ami.secret = "backend-secret"
    settings.lockout.ami_secret = "notifier-secret"
    manager = render(plan, settings)["manager.conf"]
    users = {name: _sections(manager, name)[0] for name in ("hotline", "hotline-lockout")}
    notifier = users["hotline-lockout"].splitlines()
    assert "secret=notifier-secret" in notifier
    assert "write=user" in notifier
    assert "read=" in notifier  # reads no event
    assert "permit=127.0.0.1/255.255.255.255" in notifier
    backend = users["hotline"].splitlines()
    read = next(line for line in backend if line.startswith("read="))
    write = next(line for line in backend if line.startswith("write="))
    assert "user" in read[5:].split(",")  # receives the notifier's UserEvents
    assert not {"system", "command", "config", "originate", "all"} & set(write[6:].split(","))
    settings.lockout.enabled = False
    assert "[hotline-lockout]" not in render(plan, settings)["manager.conf"]


def test_sip_secrets_carry_at_least_128_bits():
    secrets = {new_sip_secret() for _ in range(200)}
    assert len(secrets) == 200
    for secret in secrets:
        assert len(secret) >= 32
        assert set(secret) <= set("0123456789abcdef")  # 4 bits a character
