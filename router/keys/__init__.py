"""Virtual keys: ``sk-...`` secrets of which only a SHA-256 digest is stored (in Redis)."""
