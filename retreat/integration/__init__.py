"""After the retreat: the integration plan, circles, follow-ups and check-ins, the journal."""
