"""The Lua scripts that alone change budget and rate-limit counters (see :mod:`.keys`).

Both scripts first reclaim up to 64 expired reservations (their owner died), so an expired hold
never blocks a budget for longer than ``reservation_ttl_s``. Time comes from Redis (``TIME``),
so gateways with skewed clocks agree on expiry.

RESERVE
  KEYS: res, exp, budget scope hashes (nb), rate-limit hashes (nr)
  ARGV: rid, amount_nano, ttl_ms, nb, nr, est_tokens, then per budget scope
        (limit_nano, key_ttl_s, soft_nano or -1), then per rate-limit scope (rpm, tpm; 0 = none)
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
  If the reservation is still open its hold is released; the actual cost is always added.
  Returns 1 when the reservation was open, 0 when it had expired (or was settled already).
"""

from __future__ import annotations

RECLAIM = r"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function reclaim(res, exp, now)
  local old = redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, 64)
  for _, rid in ipairs(old) do
    local d = redis.call('HGET', res, rid)
    if d then
      local parts = {}
      for p in string.gmatch(d, '[^\t]+') do parts[#parts + 1] = p end
      local amount = tonumber(parts[1])
      if parts[3] and parts[3] ~= '-' then
        for k in string.gmatch(parts[3], '[^,]+') do
          if redis.call('EXISTS', k) == 1 then redis.call('HINCRBY', k, 'reserved', -amount) end
        end
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
redis.call('HSET', res, rid, amount .. '\t' .. est .. '\t' .. held .. '\t' .. rls)
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
redis.call('HDEL', res, rid)
reclaim(res, exp, now)
for i = 1, nb do
  local key = KEYS[2 + i]
  if open == 1 and amount ~= 0 then redis.call('HINCRBY', key, 'reserved', -amount) end
  if actual ~= 0 then redis.call('HINCRBY', key, 'spent', actual) end
  local key_ttl = tonumber(ARGV[6 + i])
  if key_ttl > 0 then redis.call('EXPIRE', key, key_ttl, 'NX') end
end
for i = 3 + nb, #KEYS do
  if open == 1 and redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('HINCRBY', KEYS[i], 'tok', tokens - est)
  end
end
return open
"""
)
