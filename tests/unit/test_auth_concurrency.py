"""One TOTP code or recovery code, used by two sign-ins at the same moment, lets only one through."""

from __future__ import annotations

import threading

import pyotp

from retreat.accounts import auth
from retreat.accounts import users as accounts
from retreat.extensions import db
from retreat.models import User
from retreat.timeutil import now_utc


def _race(app, user_id: int, code: str) -> list[bool]:
    barrier = threading.Barrier(2)
    results: list[bool] = []
    lock = threading.Lock()

    def attempt():
        with app.app_context():
            barrier.wait()
            user = db.session.get(User, user_id)
            ok = auth.verify_second_factor(user, code)
            db.session.commit()
            db.session.remove()
            with lock:
                results.append(ok)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return sorted(results)


def test_same_code_twice_at_once_only_one_sign_in(committing_app):
    app = committing_app
    with app.app_context():
        user = accounts.create_user(email="race@example.com", name="Race", role="admin",
                                    password="a-long-password-1", verified=True)
        secret = auth.begin_totp_setup(user)
        codes = auth.enable_totp(user, pyotp.TOTP(secret).at(now_utc().timestamp() - 30))
        db.session.commit()
        user_id = user.id
        db.session.remove()
    assert _race(app, user_id, pyotp.TOTP(secret).now()) == [False, True]
    assert _race(app, user_id, codes[0]) == [False, True]
