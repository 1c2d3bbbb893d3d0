"""Who is calling: bearer keys when the policy says ``auth: keys``."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Protocol

from router.errors import Unauthenticated


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    tenant: str
    key_id: str | None = None
    team: str | None = None


ANONYMOUS = Principal(tenant="default")


class KeyStore(Protocol):
    """Looks up virtual keys by their secret (a Redis-backed store implements this)."""

    async def lookup(self, secret: str) -> Principal | None:
        """The principal of ``secret``, or None when it is unknown, revoked or expired."""
        ...


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Authenticator:
    """Checks keys against the master key and, when one is configured, a key store."""

    def __init__(self, master_key: str | None, store: KeyStore | None = None) -> None:
        self._master = master_key
        self.store = store

    async def authenticate(self, mode: str, authorization: str | None) -> Principal:
        """Return the caller, or raise :class:`Unauthenticated` (401)."""
        if mode == "none":
            return ANONYMOUS
        token = bearer_token(authorization)
        if token is None:
            raise Unauthenticated(
                "Missing API key: send 'Authorization: Bearer <key>'.",
                param="authorization",
                code="missing_api_key",
            )
        if self._master and hmac.compare_digest(token.encode(), self._master.encode()):
            return Principal(tenant="admin", key_id="master", team="admin")
        if self.store is not None:
            found = await self.store.lookup(token)
            if found is not None:
                return found
        raise Unauthenticated("Invalid API key.", param="authorization")
