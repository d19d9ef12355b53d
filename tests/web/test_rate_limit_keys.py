"""Rate-limit keys in Redis hold no client address or email in clear (issue #22 item 2): read the
raw keys Flask-Limiter and the sign-in limits write to a real Redis (db 11)."""

from __future__ import annotations

import pytest

from retreat import create_app
from retreat.extensions import limiter
from tests import factories
from tests.conftest import base_config

REDIS = "redis://127.0.0.1:6379/11"
ADDRESS = "203.0.113.77"
EMAIL = "rate-keys-person@example.com"


@pytest.fixture()
def redis_client():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    client.flushdb()
    before = limiter.enabled
    yield client
    client.flushdb()
    limiter.reset()
    limiter.enabled = before


def test_redis_keys_are_keyed_hashes(db, redis_client):
    app = create_app(base_config(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=REDIS, REDIS_URL=REDIS))
    factories.user("participant", email=EMAIL)
    db.session.commit()
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = ADDRESS
    assert c.post("/account/forgot-password", data={"email": EMAIL}).status_code == 200  # Flask-Limiter
    assert c.post("/account/login", data={"email": EMAIL, "password": "wrong-password-x"}).status_code == 422
    assert c.post("/consult/details", data={}).status_code in (302, 422)
    keys = [k.decode() for k in redis_client.keys("*")]
    assert any("forgot:" in k for k in keys) and any("retreat:sign-in:" in k for k in keys), keys
    assert any("consult-book:" in k for k in keys), keys
    for key in keys:
        assert ADDRESS not in key and EMAIL not in key and "example.com" not in key, key
    # keyed with the secret: another secret gives other keys for the same client
    from retreat.web import rate_keys

    with app.test_request_context(environ_base={"REMOTE_ADDR": ADDRESS}):
        mine = rate_keys.client("forgot")()
    other = create_app(base_config(SECRET_KEY="another-secret-key-that-is-long-enough-98765"))
    with other.test_request_context(environ_base={"REMOTE_ADDR": ADDRESS}):
        theirs = rate_keys.client("forgot")()
    assert any(mine in k for k in keys) and mine != theirs
