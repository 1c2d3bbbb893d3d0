"""The spend ledger: one record per request in a Redis stream, plus daily rollups."""
