"""Redis: the one client (standalone, Sentinel, Cluster), the embedded Redis 8, and every key name.

Modules here import the ``redis`` library by its absolute name; ``router.redis`` never shadows it.
"""
