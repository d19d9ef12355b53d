"""Accounts: users, roles, provider organisations and licences, tokens; sign-in, two-factor, preferences."""
