"""Retreats, cohorts and sessions; the enrollment state machine; seats and waitlist; preparation and consents."""
