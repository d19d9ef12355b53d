"""What the browser tests share: the password their accounts get and signing in through the form."""

from __future__ import annotations

from playwright.sync_api import expect

PASSWORD = "a-long-password-1"


def sign_in(page, url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(url + "/account/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def open_menu(page, group: str | None = None) -> None:
    """Open the main menu (behind its button on a small screen) and, if named, one of its groups.
    Waits for the page (and its deferred nav.js) to load first: called right after a click that
    navigates, it must not look at the page being left."""
    page.wait_for_load_state("load")
    toggle = page.locator(".nav-toggle")
    if toggle.is_visible() and toggle.get_attribute("aria-expanded") != "true":
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
    if group:
        button = page.locator(".nav-group-button", has_text=group).first
        button.wait_for(state="visible", timeout=10_000)
        if button.get_attribute("aria-expanded") != "true":
            button.click()
            expect(button).to_have_attribute("aria-expanded", "true")


def sign_out(page) -> None:
    """Sign out through the account menu, as a person would."""
    open_menu(page, "Account")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
