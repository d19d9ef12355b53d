"""The web layer shared by every blueprint: security, request hooks, error pages, templating, page caches, form helpers."""
