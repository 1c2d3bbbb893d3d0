"""Every Redis key the cache uses, in one place.

All keys of one tenant carry the hash tag ``{<tenant>}`` so that, on Redis Cluster, the keys a
Lua script or a pipeline touches together live in one slot:

=======================================  ==================================================
``rc:{T}:x:<digest>``                    exact entry (string, JSON, ``EX`` = policy TTL)
``rc:{T}:vs:<scope>``                    semantic vector set of one scope (``VADD``/``VSIM``);
                                         each element's attributes hold its entry (JSON)
``rc:{T}:vz:<scope>``                    sorted set: element -> time stored (Unix seconds),
                                         the age index used for TTL and size-cap eviction
=======================================  ==================================================

``T`` is the tenant, kept readable when it is short and plain, else replaced by a hash (so a
``{`` or ``}`` in a tenant name can never move the tag). ``<digest>`` and ``<scope>`` are
BLAKE2b digests (hex) computed by :mod:`router.cache.canonical`.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "rc"
_PLAIN = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")


def tenant_tag(tenant: str) -> str:
    """The hash tag for ``tenant`` (without braces): the name itself, or ``h-<hash>``."""
    if _PLAIN.match(tenant):
        return tenant
    return "h-" + hashlib.blake2b(tenant.encode(), digest_size=10).hexdigest()


def exact_key(tenant: str, digest: str) -> str:
    """The exact-cache entry for request digest ``digest``."""
    return f"{PREFIX}:{{{tenant_tag(tenant)}}}:x:{digest}"


def vector_set_key(tenant: str, scope: str) -> str:
    """The semantic vector set of ``scope``."""
    return f"{PREFIX}:{{{tenant_tag(tenant)}}}:vs:{scope}"


def age_index_key(tenant: str, scope: str) -> str:
    """The sorted set of element ages (score: Unix seconds stored) of ``scope``."""
    return f"{PREFIX}:{{{tenant_tag(tenant)}}}:vz:{scope}"


def tenant_pattern(tenant: str) -> str:
    """A ``SCAN MATCH`` pattern for every cache key of ``tenant`` (for purges)."""
    tag = tenant_tag(tenant)
    escaped = re.sub(r"([*?\[\]\\])", r"\\\1", tag)
    return f"{PREFIX}:{{{escaped}}}:*"
