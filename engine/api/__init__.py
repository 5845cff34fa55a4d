"""Serving: the HTTP API that renders products on demand from the views in Redis."""
