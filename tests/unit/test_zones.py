"""Time zones as people pick them: canonical names, aliases mapped, offsets shown (issue #20 item 3)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from retreat.timeutil import canonical_zone, common_zones, utc_offset_label, zone_label
from retreat.web.forms import zone_options


@pytest.mark.parametrize(("name", "canonical"), [
    ("Asia/Calcutta", "Asia/Kolkata"), ("US/Mountain", "America/Denver"), ("Europe/Kiev", "Europe/Kyiv"),
    ("America/Buenos_Aires", "America/Argentina/Buenos_Aires"), ("Etc/UTC", "UTC"), ("UTC", "UTC"),
    ("Europe/Berlin", "Europe/Berlin"), (" Europe/Berlin ", "Europe/Berlin"),
])
def test_an_alias_maps_to_its_canonical_zone(name, canonical):
    assert canonical_zone(name) == canonical


@pytest.mark.parametrize("name", ["Mars/Olympus", "europe/berlin", "", None, "../etc/passwd", "Europe/Berlin\x00", 7])
def test_what_is_no_zone_maps_to_nothing(name):
    assert canonical_zone(name) is None


def test_the_picker_offers_only_canonical_zones():
    zones = common_zones()
    assert "Asia/Kolkata" in zones and "America/Denver" in zones and zones[-1] == "UTC"
    for alias in ("Asia/Calcutta", "US/Pacific", "Etc/GMT+5", "Europe/Kiev", "GMT", "Asia/Saigon"):
        assert alias not in zones
    assert all(canonical_zone(z) == z for z in zones)
    assert 280 < len(zones) < 400  # about 590 names with the aliases


def test_offsets_follow_daylight_saving():
    winter, summer = datetime(2027, 1, 12, tzinfo=UTC), datetime(2027, 7, 12, tzinfo=UTC)
    assert utc_offset_label("Europe/Berlin", winter) == "UTC+01:00"
    assert utc_offset_label("Europe/Berlin", summer) == "UTC+02:00"
    assert utc_offset_label("America/St_Johns", winter) == "UTC-03:30"
    assert zone_label("America/Denver", summer) == "America / Denver (UTC-06:00)"


def test_the_likely_zones_come_first_once():
    at = datetime(2027, 1, 12, tzinfo=UTC)
    options = zone_options(["US/Mountain", "Europe/Berlin", None], now=at)
    assert [v for v, _ in options[:2]] == ["America/Denver", "Europe/Berlin"]
    values = [v for v, _ in options]
    assert len(values) == len(set(values)) == len(common_zones())


def test_an_email_gives_a_moment_in_the_recipients_zone_readably():
    from retreat.timeutil import email_time

    at = datetime(2027, 1, 12, 16, 0, tzinfo=UTC)
    assert email_time(at, "Europe/Berlin") == "Tuesday 12 January 2027, 17:00 (Europe/Berlin)"
    assert email_time(at, "America/Denver") == "Tuesday 12 January 2027, 09:00 (America/Denver)"
    assert email_time(at, "Nowhere/Land") == "Tuesday 12 January 2027, 16:00 (UTC)"
    assert email_time(datetime(2027, 7, 12, 16, 0, tzinfo=UTC), "Europe/Berlin").endswith("18:00 (Europe/Berlin)")


def test_email_templates_show_times_in_the_recipients_zone_and_never_iso(app):
    from retreat.messaging.render import render_email

    with app.app_context():
        mail = render_email("followup_checkin", {"participant_name": "Pat", "cohort_title": "Spring", "kind": "72h",
                                                 "kind_label": "72-hour check-in", "is_checkin": True,
                                                 "expires_at": "2027-01-12T16:00:00+00:00", "url": "https://x.test/f"},
                            recipient_tz="Europe/Berlin")
    for body in (mail.text, mail.html):
        assert "Tuesday 12 January 2027, 17:00 (Europe/Berlin)" in body
        assert "2027-01-12" not in body and "T16:00" not in body
