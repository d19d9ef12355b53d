from urllib.parse import urlsplit

import segno
from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from sqlalchemy.exc import IntegrityError

from retreat.accounts import auth, calendar_feeds, signin_limits
from retreat.accounts import sessions as server_sessions
from retreat.accounts import tokens as account_tokens
from retreat.accounts import users as accounts
from retreat.accounts.models import User
from retreat.blueprints.account import bp
from retreat.blueprints.account.forms import (
    PASSWORD_HINT,
    ChangePasswordForm,
    ConfirmForm,
    EmailOnlyForm,
    LoginForm,
    ProfileForm,
    ResendVerificationForm,
    ResetPasswordForm,
    SignupForm,
    TotpCodeForm,
    TotpDisableForm,
)
from retreat.core.errors import DomainError
from retreat.extensions import db, limiter
from retreat.timeutil import now_utc
from retreat.web import capability_links, rate_keys, transaction
from retreat.web import sessions as web_sessions
from retreat.web.capability_links import private_page
from retreat.web.forms import show_domain_error
from retreat.web.hooks import no_store
from retreat.web.security import login_required_any, request_context

TOTP_PENDING_SECONDS = 5 * 60  # the second step must follow the password within this time
RESET_LINK, VERIFY_LINK = "reset", "verify"  # capability_links kinds
LINK_NOT_HELD = ("This page opens from the link in your email. Open that link again in this browser "
                 "(or ask for a new one).")


@bp.context_processor
def _account_template_globals():
    return {"password_hint": PASSWORD_HINT}


def _limit(key: str):
    """A rate limit (Flask-Limiter string) read from the app config at request time."""
    return lambda: current_app.config[key]


def _ip_key(prefix: str):
    return rate_keys.client(prefix)


def safe_next(target: str | None) -> str | None:
    """Only same-site relative paths are followed after login."""
    if not target:
        return None
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target




def end_session(message: str, endpoint: str):
    """This browser is signed out (its server session already ended) and forgets everything."""
    web_sessions.forget_browser()
    flash(message, "info")
    return redirect(url_for(endpoint))


def _home():
    return url_for("public.home")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(_home())
    form = LoginForm()
    if form.validate_on_submit():
        result = signin_limits.authenticate(form.email.data, form.password.data, ctx=request_context())
        transaction.keep("the sign-in attempt's audit event and failure count, whatever the answer")
        if result.user is None:
            form.password.errors.append(result.message)
        elif result.needs_totp:
            session.clear()
            session["totp_pending_user"] = result.user.get_id()
            session["totp_remember"] = bool(form.remember.data)
            session["totp_next"] = safe_next(request.args.get("next"))
            session["totp_started"] = int(now_utc().timestamp())
            return redirect(url_for("account.totp_verify"))
        else:
            web_sessions.sign_in(result.user, remember=bool(form.remember.data))
            return redirect(safe_next(request.args.get("next")) or _home())
    return render_template("account/login.html", form=form), (422 if form.errors else 200)


@bp.post("/logout")
@login_required
def logout():
    auth.record_logout(current_user._get_current_object(), ctx=request_context())
    web_sessions.sign_out()
    flash("You are signed out.", "info")
    return redirect(url_for("public.index"))


# Sign-up and email verification ---------------------------------------------------------------


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(_limit("SIGNUP_RATE_LIMIT"), methods=["POST"], key_func=_ip_key("signup"))
def signup():
    if current_user.is_authenticated:
        return redirect(_home())
    form = SignupForm()
    if form.validate_on_submit():
        try:
            accounts.sign_up(name=form.name.data, email=form.email.data, password=form.password.data,
                             tz=form.tz.data, ctx=request_context())
            db.session.flush()  # a concurrent sign-up of the same address fails here, not at the commit
        except DomainError as err:
            show_domain_error(form, err)
        except IntegrityError:  # the same address signed up concurrently: same outcome as "exists"
            transaction.discard("the same address signed up concurrently")
            return redirect(url_for("account.check_email"))
        else:
            # Nobody is signed in by a sign-up, new address or not: the answer is the same either way
            # (no enumeration); the verification link, then the password, sign a new account in.
            return redirect(url_for("account.check_email"))
    return render_template("account/signup.html", form=form,
                           autodetect_tz=not form.is_submitted()), (422 if form.errors else 200)


@bp.get("/check-email")
def check_email():
    return render_template("account/check_email.html")


@bp.get("/verify-email/<token>")
@private_page
def verify_email_link(token: str):
    """The emailed link: its token moves into this browser's session, the address loses it."""
    try:
        account_tokens.load_verify_token(token)
    except account_tokens.TokenExpired:
        pass  # the page behind the hand-over offers a new link
    except account_tokens.TokenInvalid as err:
        return render_template("account/verify_email.html", state="invalid", message=err.message,
                               resend_form=ResendVerificationForm()), 400
    return capability_links.hand_over(VERIFY_LINK, "", token, url_for("account.verify_email"))


@bp.get("/verify-email")
@private_page
def verify_email():
    token = capability_links.held(VERIFY_LINK)
    state, expired_token, message = "verified", None, LINK_NOT_HELD
    if token is None:
        state = "invalid"
    else:
        try:
            _user, already = accounts.verify_email(token, ctx=request_context())
            state = "already" if already else "verified"
        except account_tokens.TokenExpired as err:
            state, message, expired_token = "expired", err.message, token
        except account_tokens.TokenInvalid as err:
            state, message = "invalid", err.message
    if state in ("verified", "already"):
        capability_links.drop(VERIFY_LINK)
        return render_template("account/verify_email.html", state=state)
    return render_template("account/verify_email.html", state=state, message=message,
                           resend_form=ResendVerificationForm(token=expired_token)), 400


@bp.post("/verify-email/resend")
@limiter.limit(_limit("RESEND_RATE_LIMIT"), key_func=_ip_key("resend"))
def resend_verification():
    form = ResendVerificationForm()
    if form.validate_on_submit():
        if current_user.is_authenticated:
            accounts.send_verification(current_user._get_current_object())
        elif form.token.data:
            accounts.resend_verification_for_token(form.token.data)
    if current_user.is_authenticated and current_user.email_verified:
        flash("Your email address is already confirmed.", "info")
        return redirect(url_for("account.settings"))
    flash("If that address still needs confirming, a new link is on its way. It may take a minute.", "info")
    return redirect(url_for("account.check_email"))


# Password reset -------------------------------------------------------------------------------


@bp.route("/forgot-password", methods=["GET", "POST"])
@limiter.limit(_limit("PASSWORD_RESET_RATE_LIMIT"), methods=["POST"], key_func=_ip_key("forgot"))
def forgot_password():
    form = EmailOnlyForm()
    if form.validate_on_submit():
        accounts.request_password_reset(form.email.data, ctx=request_context())
        return render_template("account/forgot_password.html", form=form, sent=True)
    return render_template("account/forgot_password.html", form=form, sent=False), (422 if form.errors else 200)


@bp.get("/reset-password/<token>")
@private_page
@no_store
def reset_password_link(token: str):
    """The emailed link: checked, then held in this browser's session; the form's address has no token."""
    try:
        account_tokens.load_reset_token(token)
    except (account_tokens.TokenExpired, account_tokens.TokenInvalid) as err:
        return render_template("account/reset_invalid.html", message=err.message), 400
    return capability_links.hand_over(RESET_LINK, "", token, url_for("account.reset_password"))


@bp.route("/reset-password", methods=["GET", "POST"])
@limiter.limit(_limit("PASSWORD_RESET_RATE_LIMIT"), methods=["POST"], key_func=_ip_key("reset"))
@private_page
@no_store
def reset_password():
    token = capability_links.held(RESET_LINK)
    if token is None:
        return render_template("account/reset_invalid.html", message=LINK_NOT_HELD), 400
    try:
        account_tokens.load_reset_token(token)
    except (account_tokens.TokenExpired, account_tokens.TokenInvalid) as err:
        capability_links.drop(RESET_LINK)
        return render_template("account/reset_invalid.html", message=err.message), 400
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            accounts.reset_password(token, form.password.data, ctx=request_context())
        except (account_tokens.TokenExpired, account_tokens.TokenInvalid) as err:
            capability_links.drop(RESET_LINK)
            return render_template("account/reset_invalid.html", message=err.message), 400
        except DomainError as err:
            show_domain_error(form, err)
        else:
            web_sessions.forget_browser()  # the reset ended every session of the account (and drops the link)
            flash("Your password is changed. Sign in with your new password.", "success")
            return redirect(url_for("account.login"))
    return render_template("account/reset_password.html", form=form), (422 if form.errors else 200)


# Two-factor -----------------------------------------------------------------------------------


def _pending_user() -> User | None:
    """The user who passed the password step in this session, if still recent and unchanged."""
    ident = session.get("totp_pending_user")
    started = session.get("totp_started")
    if not ident or not isinstance(started, int) or now_utc().timestamp() - started > TOTP_PENDING_SECONDS:
        return None
    try:
        user_id, version = str(ident).split(":", 1)
        user = db.session.get(User, int(user_id))
    except (TypeError, ValueError):
        return None
    if user is None or not user.is_active or str(user.session_version) != version or not user.totp_enabled:
        return None
    return user


def _totp_limit_key() -> str:
    return rate_keys.hashed("totp", session.get("totp_pending_user") or request.remote_addr)


@bp.route("/login/two-factor", methods=["GET", "POST"])
@limiter.limit(_limit("TOTP_RATE_LIMIT"), methods=["POST"], key_func=_totp_limit_key)
@limiter.limit(_limit("LOGIN_RATE_LIMIT"), methods=["POST"], key_func=_ip_key("totp-ip"))
def totp_verify():
    if current_user.is_authenticated:
        return redirect(_home())
    user = _pending_user()
    if user is None:
        session.clear()
        flash("Please sign in again.", "info")
        return redirect(url_for("account.login"))
    form = TotpCodeForm()
    if form.validate_on_submit():
        ok = auth.verify_second_factor(user, form.code.data, ctx=request_context())
        transaction.keep("the code attempt's audit event and failure count, whatever the answer")
        if ok:
            remember, target = bool(session.get("totp_remember")), safe_next(session.get("totp_next"))
            web_sessions.sign_in(user, remember=remember)
            return redirect(target or _home())
        failures = int(session.get("totp_failures", 0)) + 1
        if failures >= auth.MAX_TOTP_FAILURES:
            session.clear()
            flash("Too many wrong codes. Please sign in again with your password.", "warning")
            return redirect(url_for("account.login"))
        session["totp_failures"] = failures
        left = auth.MAX_TOTP_FAILURES - failures
        form.code.errors.append(f"That code is not right or was already used. {left} "
                                f"attempt{'s' if left != 1 else ''} left.")
    return render_template("account/totp_verify.html", form=form), (422 if form.errors else 200)


def _qr_svg(uri: str) -> str:
    return segno.make(uri, error="m").svg_inline(scale=5, light="#fff", title="QR code for your authenticator app")


@bp.route("/two-factor/setup", methods=["GET", "POST"])
@login_required_any
@no_store
def totp_setup():
    user = current_user._get_current_object()
    if user.totp_enabled:
        return render_template("account/totp_setup.html", enabled=True)
    secret = auth.begin_totp_setup(user)
    transaction.commit_now("the new secret stays whether or not the code below is accepted")
    form = TotpCodeForm()
    codes = submit(form, lambda: auth.enable_totp(user, form.code.data, ctx=request_context()), keep_audit=True)
    if codes:
        return render_template("account/totp_enabled.html", codes=codes)
    uri = auth.provisioning_uri(user, secret, current_app.config["PRACTICE_NAME"])
    return render_template("account/totp_setup.html", enabled=False, form=form, secret=secret,
                           qr_svg=_qr_svg(uri)), (422 if form.errors else 200)


@bp.post("/two-factor/disable")
@login_required_any
def totp_disable():
    user = current_user._get_current_object()
    if not auth.can_disable_totp(user):
        flash("Your practice requires two-factor authentication for staff accounts.", "error")
        return redirect(url_for("account.settings"))
    form = TotpDisableForm(prefix="totp")
    if submit(form, lambda: auth.disable_totp(user, form.password.data, form.code.data, ctx=request_context()),
              keep_audit=True):
        flash("Two-factor authentication is off.", "success")
        return redirect(url_for("account.settings"))
    return _render_settings(totp_form=form), 422


# Settings -------------------------------------------------------------------------------------


def _render_settings(**forms):
    user = current_user._get_current_object()
    forms.setdefault("profile_form", ProfileForm(prefix="profile", obj=user))
    forms.setdefault("password_form", ChangePasswordForm(prefix="pw"))
    forms.setdefault("totp_form", TotpDisableForm(prefix="totp"))
    forms.setdefault("everywhere_form", ConfirmForm(prefix="everywhere"))
    forms.setdefault("session_form", ConfirmForm(prefix="session"))
    current = web_sessions.current_session()
    return render_template("account/settings.html", user=user, can_disable_totp=auth.can_disable_totp(user),
                           open_sessions=server_sessions.open_sessions(user),
                           current_session_id=current.id if current else None,
                           recovery_codes_left=auth.recovery_codes_left(user) if user.totp_enabled else 0,
                           can_subscribe_calendar=calendar_feeds.can_subscribe(user),
                           **forms)


@bp.route("/settings", methods=["GET", "POST"])
@login_required_any
def settings():
    user = current_user._get_current_object()
    form = ProfileForm(prefix="profile", obj=user)
    changed = submit(form, lambda: accounts.update_profile(
        user, name=form.name.data, tz=form.tz.data, phone=form.phone.data,
        marketing_opt_out=bool(form.marketing_opt_out.data), ctx=request_context()))
    if changed is not None:
        flash("Your details are saved." if changed else "Nothing to change.", "success")
        return redirect(url_for("account.settings"))
    return _render_settings(profile_form=form), (422 if form.errors else 200)


@bp.post("/settings/password")
@login_required_any
def change_password():
    user = current_user._get_current_object()
    form = ChangePasswordForm(prefix="pw")
    if submit(form, lambda: accounts.change_password(user, form.current_password.data, form.password.data,
                                                     ctx=request_context(),
                                                     keep_session=web_sessions.current_session()),
              keep_audit=True):  # this device stays signed in; every other session has ended
        flash("Your password is changed. Other devices have been signed out.", "success")
        return redirect(url_for("account.settings"))
    return _render_settings(password_form=form), 422


@bp.post("/settings/sign-out-everywhere")
@login_required_any
def logout_everywhere():
    form = ConfirmForm(prefix="everywhere")
    if not form.validate_on_submit():
        return _render_settings(everywhere_form=form), 400
    accounts.logout_everywhere(current_user._get_current_object(), ctx=request_context())
    return end_session("You are signed out on every device, including this one.", "account.login")


@bp.post("/settings/sessions/<int:session_id>/sign-out")
@login_required_any
def session_sign_out(session_id: int):
    """Sign out one of your sessions (a lost phone, a shared computer) from the account page."""
    form = ConfirmForm(prefix="session")
    if not form.validate_on_submit():
        return _render_settings(session_form=form), 400
    user, current = current_user._get_current_object(), web_sessions.current_session()
    try:
        row = server_sessions.revoke_own(user, session_id)
    except DomainError:
        abort(404)
    auth.record_session_ended(user, row.id, ctx=request_context())
    if current is not None and row.id == current.id:
        return end_session("You are signed out.", "account.login")
    flash(f"Signed out: {row.device}.", "success")
    return redirect(url_for("account.settings"))


def submit(form, call, *, keep_audit: bool = False):
    """Validate ``form``, run the service ``call`` and commit; return its result (True for None), or None when the
    form or the service refused (messages are then on the form). ``keep_audit`` commits the audit
    event a refusing service wrote (failed code, wrong password); services that do so change nothing else."""
    if not form.validate_on_submit():
        return None
    try:
        result = call()
    except DomainError as err:
        if keep_audit:
            transaction.keep("the audit event of a refused attempt")
        show_domain_error(form, err)
        return None
    return True if result is None else result


