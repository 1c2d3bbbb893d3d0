"""The shadow budget: a per-day dollar cap shared by every replica, reserved atomically.

Before a shadow job calls anything it reserves a worst-case estimate with one Lua script
(``spent + estimate <= cap``, else refused); afterwards it settles to what the calls cost.
Reservations and settlements are integers in nano-dollars, so concurrent replicas never
overshoot the cap by more than the estimates in flight were wrong.
"""

from __future__ import annotations

from typing import Any

from router.redis import keys as lk
from router.redis.keys import to_nano

DAY_TTL_S = 3 * 86400
"""A day's counter outlives its day a little (reports read yesterday's)."""
RESERVE = r"""
-- KEYS: the day's counter; ARGV: nano-dollars to reserve, cap in nano-dollars, TTL seconds
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
if spent + want > tonumber(ARGV[2]) then return 0 end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class ShadowBudget:
    """Reserve, settle and read the day's shadow spend."""

    def __init__(self, redis: Any) -> None:
        """Use ``redis`` (a ``decode_responses`` client)."""
        self.redis = redis

    async def reserve(self, usd: float, cap_usd: float, day: str | None = None) -> bool:
        """Reserve ``usd`` under ``cap_usd`` for ``day`` (UTC); False when it does not fit."""
        ok = await self.redis.eval(
            RESERVE, 1, lk.spend_key(day), to_nano(usd), to_nano(cap_usd), DAY_TTL_S
        )
        return bool(int(ok))

    async def settle(self, reserved_usd: float, actual_usd: float, day: str | None = None) -> None:
        """Replace a reservation by what the calls cost (both in US dollars)."""
        delta = to_nano(actual_usd) - to_nano(reserved_usd)
        if delta:
            await self.redis.incrby(lk.spend_key(day), delta)

    async def spent_usd(self, day: str | None = None) -> float:
        """Spent plus reserved on ``day`` (default today, UTC), in US dollars."""
        raw = await self.redis.get(lk.spend_key(day))
        return int(raw or 0) / 1e9
