"""Everything outside dlt's loads: tables, deletions, views, the quarantine table, the read copy, the lock, the
pipeline and destination factory, and their settings."""
