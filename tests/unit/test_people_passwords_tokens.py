import hashlib

from argon2 import PasswordHasher

from hotline.cli import ROLES
from hotline.db.models import Role
from hotline.people.passwords import Passwords, generate_password
from hotline.people.services import TokenCache
from hotline.people.tokens import looks_like_token, new_token, token_digest
from hotline.web.auth import bearer_token

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified: list[str] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified.append(str(hash))
        return super().verify(hash, password)


def test_a_password_verifies_and_a_wrong_one_does_not():
    passwords = Passwords(CHEAP)
    stored = passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    assert passwords.verify(stored, "correct horse battery")
    assert not passwords.verify(stored, "correct horse batterY")
    assert not passwords.verify("not an argon2 hash", "correct horse battery")


def test_an_unknown_user_costs_a_real_verification():
    hasher = CountingHasher()
    passwords = Passwords(hasher)
    assert not passwords.verify(None, "whatever it is")
    assert not passwords.verify(None, "whatever it is")
    # Both checks ran argon2 against the same dummy hash, as for a real user.
    assert len(hasher.verified) == 2 and hasher.verified[0] == hasher.verified[1]
    assert hasher.verified[0].startswith("$argon2id$")


def test_hashes_made_with_other_parameters_need_a_rehash():
    cheap = Passwords(CHEAP)
    default = Passwords()
    stored = cheap.hash("correct horse battery")
    assert not cheap.needs_rehash(stored)
    assert default.needs_rehash(stored)
    assert default.verify(stored, "correct horse battery")  # still verifies meanwhile
    assert default.needs_rehash("garbage")


def test_generated_passwords_are_long_and_different():
    generated = {generate_password() for _ in range(50)}
    assert len(generated) == 50
    assert all(len(password) >= 20 for password in generated)


def test_tokens_have_the_prefix_and_only_their_sha256_is_stored():
    token = new_token()
    assert token.startswith("h12355_") and len(token) == len("h12355_") + 43
    assert looks_like_token(token)
    assert token_digest(token) == hashlib.sha256(token.encode()).hexdigest()
    assert len(token_digest(token)) == 64
    assert new_token() != token


def test_only_well_formed_tokens_are_looked_up():
    token = new_token()
    for bad in ("", "h12355_", token[:-1], token + "x", "x" + token, token.replace("_", " ", 1),
                "h12355_" + "!" * 43):
        assert not looks_like_token(bad), bad


def test_bearer_header_parsing():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc  ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer") is None
    assert bearer_token("") is None


def test_the_token_cache_forgets_after_its_ttl_and_on_demand():
    from hotline.audit import Actor
    from hotline.people.services import Authenticated, _Cached

    now = [100.0]
    cache = TokenCache(ttl=5, size=3, monotonic=lambda: now[0])

    def entry(token_id: int, user_id: int) -> _Cached:
        return _Cached(authenticated=Authenticated(Actor("u", "admin", user_id), token_id),
                       user_id=user_id, expires_at=None, last_used_at=None,
                       fetched_at=now[0])

    cache.put("a", entry(1, 10))
    cache.put("b", entry(2, 10))
    cache.put("c", entry(3, 20))
    assert cache.get("a") is not None
    cache.forget_user(10)
    assert cache.get("a") is None and cache.get("b") is None and cache.get("c") is not None
    cache.forget_token(3)
    assert cache.get("c") is None
    cache.put("d", entry(4, 30))
    now[0] += 5
    assert cache.get("d") is None
    for index in range(5):  # bounded: the oldest entries make room
        cache.put(f"e{index}", entry(10 + index, 40))
    assert len(cache) == 3


def test_cli_roles_are_the_model_roles():
    assert set(ROLES) == {role.value for role in Role}
