"""Finance: the Stripe events router, reconciliation, payouts, reports and exports."""
