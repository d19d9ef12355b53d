"""TOTP service: clock drift window, replay protection, recovery codes, enable/disable rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from retreat.accounts import auth
from retreat.accounts import users as accounts
from retreat.core.errors import Conflict, PermissionDenied, ValidationFailed
from tests import factories

T0 = datetime(2026, 11, 22, 12, 0, 10, tzinfo=UTC)


def _user_with_secret(role="participant"):
    user = factories.user(role)
    auth.begin_totp_setup(user)
    return user


def _code_at(user, when: datetime) -> str:
    return pyotp.TOTP(user.totp_secret).at(when)


def test_codes_within_one_step_of_drift_are_accepted_older_ones_not(db):
    user = _user_with_secret()
    assert not auth.check_totp_code(user, _code_at(user, T0 - timedelta(seconds=90)), now=T0)
    assert auth.check_totp_code(user, _code_at(user, T0 - timedelta(seconds=30)), now=T0)
    assert auth.check_totp_code(user, _code_at(user, T0 + timedelta(seconds=30)), now=T0)


def test_a_code_cannot_be_used_twice_nor_an_older_one_after_a_newer(db):
    user = _user_with_secret()
    code = _code_at(user, T0)
    assert auth.check_totp_code(user, code, now=T0)
    assert not auth.check_totp_code(user, code, now=T0)
    assert not auth.check_totp_code(user, code, now=T0 + timedelta(seconds=20))
    previous = _code_at(user, T0 - timedelta(seconds=30))
    assert not auth.check_totp_code(user, previous, now=T0)
    assert auth.check_totp_code(user, _code_at(user, T0 + timedelta(seconds=30)), now=T0 + timedelta(seconds=30))


@pytest.mark.parametrize("bad", ["", None, "12345", "1234567", "abcdef", "12 34 5x"])
def test_malformed_codes_are_refused(db, bad):
    user = _user_with_secret()
    assert not auth.check_totp_code(user, bad, now=T0)
    assert user.totp_last_step is None


def test_enable_needs_a_correct_code_and_returns_ten_single_use_recovery_codes(db):
    user = _user_with_secret()
    with pytest.raises(ValidationFailed):
        auth.enable_totp(user, "000000" if _code_at(user, T0) != "000000" else "111111", now=T0)
    assert not user.totp_enabled
    codes = auth.enable_totp(user, _code_at(user, T0), now=T0)
    assert user.totp_enabled and len(set(codes)) == auth.RECOVERY_CODE_COUNT
    with pytest.raises(Conflict):
        auth.enable_totp(user, _code_at(user, T0 + timedelta(seconds=30)), now=T0)
    assert auth.use_recovery_code(user, codes[3].replace("-", " "), now=T0)
    assert not auth.use_recovery_code(user, codes[3], now=T0)
    assert auth.recovery_codes_left(user) == auth.RECOVERY_CODE_COUNT - 1
    other = _user_with_secret()
    assert not auth.use_recovery_code(other, codes[4], now=T0)  # codes belong to their owner


def test_second_factor_accepts_code_or_recovery_code_and_audits_failures(db):
    user = _user_with_secret("facilitator")
    codes = auth.enable_totp(user, _code_at(user, T0), now=T0)
    later = T0 + timedelta(minutes=5)
    assert auth.verify_second_factor(user, _code_at(user, later), now=later)
    assert auth.verify_second_factor(user, codes[0], now=later)
    assert not auth.verify_second_factor(user, "999999" if _code_at(user, later) != "999999" else "888888",
                                         now=later)


def test_disable_rules(db):
    user = _user_with_secret("finance")
    auth.enable_totp(user, _code_at(user, T0), now=T0)
    later = T0 + timedelta(minutes=1)
    accounts.set_setting(accounts.REQUIRE_STAFF_TOTP, "1")
    with pytest.raises(PermissionDenied):
        auth.disable_totp(user, factories.PASSWORD, _code_at(user, later), now=later)
    accounts.set_setting(accounts.REQUIRE_STAFF_TOTP, "0")
    with pytest.raises(ValidationFailed) as err:
        auth.disable_totp(user, "wrong-password", _code_at(user, later), now=later)
    assert "password" in err.value.errors
    assert user.totp_enabled
    auth.disable_totp(user, factories.PASSWORD, _code_at(user, later), now=later)
    assert not user.totp_enabled and auth.recovery_codes_left(user) == 0


def test_setup_keeps_a_pending_secret_and_refuses_when_on(db):
    user = factories.user()
    secret = auth.begin_totp_setup(user)
    assert auth.begin_totp_setup(user) == secret
    auth.enable_totp(user, _code_at(user, T0), now=T0)
    with pytest.raises(Conflict):
        auth.begin_totp_setup(user)


def test_the_staff_two_factor_setting_is_kept_briefly_and_at_once_by_the_process_that_changes_it(app, db,
                                                                                                monkeypatch):
    """Read on every staff request, so each process keeps it SETTINGS_CACHE_SECONDS; a change made
    elsewhere (another process: here a direct UPDATE) shows once that time has passed."""
    from sqlalchemy import update

    from retreat.models import SiteSetting

    app.config["SETTINGS_CACHE_SECONDS"] = 10
    clock = [1000.0]
    from retreat.core import cache as core_cache

    monkeypatch.setattr(core_cache.time, "monotonic", lambda: clock[0])
    try:
        accounts.set_setting(accounts.REQUIRE_STAFF_TOTP, "0")
        assert accounts.staff_totp_required() is False
        accounts.set_setting(accounts.REQUIRE_STAFF_TOTP, "1")  # this process: at once
        assert accounts.staff_totp_required() is True
        db.session.execute(update(SiteSetting).where(SiteSetting.key == accounts.REQUIRE_STAFF_TOTP)
                           .values(value="0"))
        clock[0] += 9
        assert accounts.staff_totp_required() is True  # another process's change: not yet
        clock[0] += 2
        assert accounts.staff_totp_required() is False
    finally:
        app.config.pop("SETTINGS_CACHE_SECONDS")
        accounts._STAFF_TOTP.clear()
