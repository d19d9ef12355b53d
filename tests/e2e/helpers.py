"""What the browser tests share: the password their accounts get and signing in through the form."""

from __future__ import annotations

PASSWORD = "a-long-password-1"


def sign_in(page, url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(url + "/account/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
