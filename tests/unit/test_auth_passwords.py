"""The cheap test hasher is honoured only in testing; real hashes use the library's recommended cost."""

from __future__ import annotations

from argon2 import extract_parameters

from retreat.accounts import passwords


def test_cheap_hasher_only_when_testing(app, db):
    assert extract_parameters(passwords.hash_password("a-long-password-1")).memory_cost < 1024
    app.testing = False
    try:
        real = passwords.hash_password("a-long-password-1")
    finally:
        app.testing = True
    assert extract_parameters(real).memory_cost >= 19 * 1024
    assert real.startswith("$argon2id$")
