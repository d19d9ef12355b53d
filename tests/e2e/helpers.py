"""What the browser tests share: the password their accounts get and signing in through the form."""

from __future__ import annotations

PASSWORD = "a-long-password-1"


def sign_in(page, url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(url + "/account/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def open_menu(page, group: str | None = None) -> None:
    """Open the main menu (behind its button on a small screen) and, if named, one of its groups."""
    toggle = page.locator(".nav-toggle")
    if toggle.is_visible() and toggle.get_attribute("aria-expanded") != "true":
        toggle.click()
    if group:
        button = page.locator(".nav-group-button", has_text=group).first
        if button.is_visible() and button.get_attribute("aria-expanded") != "true":
            button.click()


def sign_out(page) -> None:
    """Sign out through the account menu, as a person would."""
    open_menu(page, "Account")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
