"""Free 1:1 consultations: availability, the slot engine, settings, booking, manage links, notices."""
