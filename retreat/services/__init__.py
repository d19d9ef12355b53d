"""Business rules. Plain functions: explicit arguments (including ``now``), no request objects."""
