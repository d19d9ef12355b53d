"""Stripe integration: ``gateway`` is the only module importing ``stripe``."""
