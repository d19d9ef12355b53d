from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from retreat.blueprints.account import bp
from retreat.blueprints.account.forms import LoginForm
from retreat.extensions import db, limiter
from retreat.security import request_context
from retreat.services import auth


def safe_next(target: str | None) -> str | None:
    """Only same-site relative paths are followed after login."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _login_limit_key() -> str:
    return f"login:{request.remote_addr}"


def start_session(user, remember: bool = False) -> None:
    """Fresh session on every login (no fixation): drop whatever the anonymous session held."""
    session.clear()
    login_user(user, remember=remember)
    session.permanent = False


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: __import__("flask").current_app.config["LOGIN_RATE_LIMIT"],
               methods=["POST"], key_func=_login_limit_key)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("public.home"))
    form = LoginForm()
    if form.validate_on_submit():
        result = auth.authenticate(form.email.data, form.password.data, ctx=request_context())
        db.session.commit()
        if result.user is None:
            form.password.errors.append(result.message)
        elif result.needs_totp:
            session.clear()
            session["totp_pending_user"] = result.user.get_id()
            session["totp_remember"] = bool(form.remember.data)
            session["totp_next"] = safe_next(request.args.get("next"))
            return redirect(url_for("account.totp_verify"))
        else:
            start_session(result.user, remember=bool(form.remember.data))
            return redirect(safe_next(request.args.get("next")) or url_for("public.home"))
    return render_template("account/login.html", form=form), (422 if form.errors else 200)


@bp.post("/logout")
@login_required
def logout():
    auth.record_logout(current_user._get_current_object(), ctx=request_context())
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("public.index"))
