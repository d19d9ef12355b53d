"""Shared mechanisms every domain uses: errors, locking, caching, signals, jobs, batching."""
