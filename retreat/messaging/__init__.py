"""Outbox dispatcher, email transport and calendar (.ics) builder."""
