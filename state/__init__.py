"""Worker state: key-value stores, the per-partition ledger, and the Redis views."""
