"""Clinical data: intake, screening, clearance, safety alerts, outcomes; the one audited read path."""
