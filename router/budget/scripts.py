"""The Lua scripts that alone change budget and rate-limit counters (see :mod:`.keys`).

The scripts first reclaim up to 64 expired reservations (their owner died), so an expired hold
never blocks a budget for longer than ``reservation_ttl_s``. A reclaimed hold is *charged* at
its reserved amount (the provider may have billed the call) and parked in
``rb:{budget}:reclaimed`` until :data:`CLAIM` hands it to a gateway, which writes its
``reclaimed`` ledger row, or until its late settle corrects the charge to the actual cost. Time
comes from Redis (``TIME``), so gateways with skewed clocks agree on expiry.

RESERVE
  KEYS: res, exp, budget scope hashes (nb), rate-limit hashes (nr)
  ARGV: rid, amount_nano, ttl_ms, nb, nr, est_tokens, then per budget scope
        (limit_nano, key_ttl_s, soft_nano or -1), then per rate-limit scope (rpm, tpm; 0 = none),
        then meta (JSON of the request: what a ``reclaimed`` ledger row needs; ``-`` for none)
  Returns {0, 0, 0, {req, tok per rl scope}, {indexes of scopes that crossed the soft limit}}
  or {1, i, age_ms, {spent_nano, reserved_nano}, {}}   budget scope i has no room: exhausted
                                                  when spent + amount > limit, else busy (other
                                                  requests' holds); age_ms: the oldest open
                                                  hold's age (for ``retry-after``)
  or {2, i, retry_ms, {count, limit}, {}}         rate-limit scope i: requests per minute
  or {3, i, retry_ms, {count, limit}, {}}         rate-limit scope i: tokens per minute

SETTLE (release = settle at 0)
  KEYS: res, exp, budget scope hashes (nb), rate-limit hashes (nr)
  ARGV: rid, actual_nano, amount_nano, actual_tokens, est_tokens, nb, key_ttl_s per scope
  Open: the hold is released and the actual cost added (returns 1). Reclaimed and not yet
  claimed: the charge is corrected from the reserved amount to the actual cost (returns 2).
  Otherwise (settled already, or its ``reclaimed`` row is being written) nothing changes
  (returns 0): a settle may be replayed from the spool any number of times.

CHARGE
  Adds spend served under ``fail_open`` once Redis is back, once per reservation id.

CLAIM
  Hands reclaimed holds older than ``min_age_ms`` (and claims left stale by a gateway that died
  while writing their rows) to the caller, as ``{rid, detail, ...}``.
"""

from __future__ import annotations

RECLAIM = r"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function split(d)
  local parts = {}
  for p in string.gmatch(d, '[^\t]+') do parts[#parts + 1] = p end
  return parts
end
-- An expired hold (its worker died, or took longer than the TTL) is charged at its reserved
-- amount, the conservative estimate of a call the provider may have billed, and kept in the
-- reclaimed hash until a gateway writes its 'reclaimed' ledger row or its late settle comes.
local function reclaim(res, exp, now)
  local rec = string.sub(res, 1, -4) .. 'reclaimed'
  local old = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 64)
  for _, rid in ipairs(old) do
    local d = redis.call('HGET', res, rid)
    if d then
      local parts = split(d)
      local amount = tonumber(parts[1])
      if parts[3] and parts[3] ~= '-' then
        for k in string.gmatch(parts[3], '[^,]+') do
          if redis.call('EXISTS', k) == 1 then
            redis.call('HINCRBY', k, 'reserved', -amount)
            redis.call('HINCRBY', k, 'spent', amount)
          end
        end
      end
      if amount > 0 and parts[3] and parts[3] ~= '-' then
        redis.call('HSET', rec, rid, d .. '\t' .. now)
      end
      redis.call('HDEL', res, rid)
    end
    redis.call('ZREM', exp, rid)
  end
end
"""

RESERVE = (
    RECLAIM
    + r"""
local res, exp = KEYS[1], KEYS[2]
local rid, amount, ttl_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local nb, nr, est = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
reclaim(res, exp, now)
local retry = 60000 - (now % 60000)
local counts = {}
for i = 1, nr do
  local key = KEYS[2 + nb + i]
  local rpm = tonumber(ARGV[6 + 3 * nb + 2 * i - 1])
  local tpm = tonumber(ARGV[6 + 3 * nb + 2 * i])
  local v = redis.call('HMGET', key, 'req', 'tok')
  local req, tok = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  if rpm > 0 and req + 1 > rpm then return {2, i, retry, {req, rpm}, {}} end
  if tpm > 0 and tok + est > tpm then return {3, i, retry, {tok, tpm}, {}} end
  counts[#counts + 1] = req + 1
  counts[#counts + 1] = tok + est
end
local before = {}
for i = 1, nb do
  local key = KEYS[2 + i]
  local limit = tonumber(ARGV[6 + 3 * i - 2])
  local v = redis.call('HMGET', key, 'spent', 'reserved')
  local spent, reserved = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  if spent + reserved + amount > limit then
    local age = 0
    if spent + amount <= limit then  -- only holds block it: how long have they been open?
      local oldest = redis.call('ZRANGE', exp, 0, 0, 'WITHSCORES')
      if oldest[2] then age = math.max(0, now - (tonumber(oldest[2]) - ttl_ms)) end
    end
    return {1, i, age, {spent, reserved}, {}}
  end
  before[i] = spent + reserved
end
for i = 1, nr do
  local key = KEYS[2 + nb + i]
  redis.call('HINCRBY', key, 'req', 1)
  redis.call('HINCRBY', key, 'tok', est)
  redis.call('EXPIRE', key, 120)
end
local crossed = {}
local keys = {}
for i = 1, nb do
  local key = KEYS[2 + i]
  local key_ttl = tonumber(ARGV[6 + 3 * i - 1])
  local soft = tonumber(ARGV[6 + 3 * i])
  redis.call('HINCRBY', key, 'reserved', amount)
  if key_ttl > 0 then redis.call('EXPIRE', key, key_ttl, 'NX') end
  if soft >= 0 and before[i] + amount >= soft and redis.call('HSETNX', key, 'alerted', 1) == 1 then
    crossed[#crossed + 1] = i
  end
  keys[#keys + 1] = key
end
local rl = {}
for i = 1, nr do rl[#rl + 1] = KEYS[2 + nb + i] end
local held = '-'
if #keys > 0 then held = table.concat(keys, ',') end
local rls = '-'
if #rl > 0 then rls = table.concat(rl, ',') end
local meta = ARGV[7 + 3 * nb + 2 * nr] or '-'
redis.call('HSET', res, rid, amount .. '\t' .. est .. '\t' .. held .. '\t' .. rls .. '\t' .. meta)
redis.call('ZADD', exp, now + ttl_ms, rid)
return {0, 0, 0, counts, crossed}
"""
)

SETTLE = (
    RECLAIM
    + r"""
local res, exp = KEYS[1], KEYS[2]
local rid, actual, amount = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, est, nb = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
local open = redis.call('ZREM', exp, rid)
local late = 0
if open == 0 then
  local rec = string.sub(res, 1, -4) .. 'reclaimed'
  late = redis.call('HDEL', rec, rid)
end
redis.call('HDEL', res, rid)
reclaim(res, exp, now)
if open == 0 and late == 0 then return 0 end  -- settled already: a replay changes nothing
for i = 1, nb do
  local key = KEYS[2 + i]
  if open == 1 then
    if amount ~= 0 then redis.call('HINCRBY', key, 'reserved', -amount) end
    if actual ~= 0 then redis.call('HINCRBY', key, 'spent', actual) end
  elseif actual ~= amount and redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', key, 'spent', actual - amount)  -- the reclaim charged 'amount'
  end
  local key_ttl = tonumber(ARGV[6 + i])
  if key_ttl > 0 then redis.call('EXPIRE', key, key_ttl, 'NX') end
end
for i = 3 + nb, #KEYS do
  if open == 1 and redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HINCRBY', KEYS[i], 'tok', tokens - est)
  end
end
if open == 1 then return 1 end
return 2
"""
)

CHARGE = r"""
-- KEYS: charged-marker hash, budget scope hashes
-- ARGV: rid, actual_nano, then key_ttl_s per scope
if redis.call('HSETNX', KEYS[1], ARGV[1], 1) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], 8 * 86400)
local actual = tonumber(ARGV[2])
for i = 2, #KEYS do
  if actual ~= 0 then redis.call('HINCRBY', KEYS[i], 'spent', actual) end
  local key_ttl = tonumber(ARGV[1 + i])
  if key_ttl > 0 then redis.call('EXPIRE', KEYS[i], key_ttl, 'NX') end
end
return 1
"""

CLAIM = (
    RECLAIM
    + r"""
-- KEYS: res, exp, reclaimed, reclaiming.  ARGV: min_age_ms, stale_ms, max
local now = now_ms()
reclaim(KEYS[1], KEYS[2], now)
local min_age, stale, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for _, src in ipairs({KEYS[3], KEYS[4]}) do
  local scan = redis.call('HSCAN', src, 0, 'COUNT', max)
  local flat = scan[2]
  for i = 1, #flat, 2 do
    if #out >= 2 * max then break end
    local rid, d = flat[i], flat[i + 1]
    local parts = split(d)
    local at = tonumber(parts[#parts])
    local age = min_age
    if src == KEYS[4] then age = stale end
    if now - at >= age then
      local base = table.concat(parts, '\t', 1, #parts - 1)
      redis.call('HSET', KEYS[4], rid, base .. '\t' .. now)
      if src == KEYS[3] then redis.call('HDEL', KEYS[3], rid) end
      out[#out + 1] = rid
      out[#out + 1] = base
    end
  end
end
return out
"""
)

CLAIMED = r"""
-- KEYS: reclaiming, reclaimed rows.  ARGV: rid, ...
-- The 'reclaimed' rows of these holds are written: keep their detail for reconciliation.
for i = 1, #ARGV do
  local d = redis.call('HGET', KEYS[1], ARGV[i])
  if d then
    redis.call('HSET', KEYS[2], ARGV[i], d)
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
redis.call('EXPIRE', KEYS[2], 40 * 86400)
return #ARGV
"""

RECONCILE = r"""
-- KEYS: reclaimed rows.  ARGV: rid, actual_nano
-- Corrects a reclaimed hold's charge from its reserved amount to the actual cost, once.
-- Returns {1, amount_nano} or {0, 0} when the hold is unknown or reconciled already.
local d = redis.call('HGET', KEYS[1], ARGV[1])
if not d then return {0, 0} end
local parts = {}
for p in string.gmatch(d, '[^\t]+') do parts[#parts + 1] = p end
local amount, actual = tonumber(parts[1]), tonumber(ARGV[2])
if parts[3] and parts[3] ~= '-' and actual ~= amount then
  for k in string.gmatch(parts[3], '[^,]+') do
    if redis.call('EXISTS', k) == 1 then redis.call('HINCRBY', k, 'spent', actual - amount) end
  end
end
redis.call('HDEL', KEYS[1], ARGV[1])
return {1, amount}
"""
