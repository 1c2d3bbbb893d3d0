"""Response caching: exact (request hash) and semantic (Redis 8 vector sets), with replay."""
