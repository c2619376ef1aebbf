-- Claim a function's due buffers for flushing, with a lease. A claimed buffer is detached
-- (renamed), so events that arrive meanwhile open a new one; a claim whose lease expired
-- (its flusher died before finishing) is handed out again.
-- KEYS[1]: the function's due index (zset: buffer member -> due ms)
-- KEYS[2]: the function's flushing index (zset: buffer id -> lease expiry ms)
-- ARGV[1]: now ms   ARGV[2]: lease ms   ARGV[3]: at most this many   ARGV[4]: key prefix
-- (the function's hash tag; buffer keys are prefix..'buf:'..member, flushing ones
-- prefix..'flush:'..id)
-- Returns the ids of the claimed buffers.
local now, lease, limit, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)) do
  redis.call('ZADD', KEYS[2], now + lease, id)
  table.insert(out, id)
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit - #out)) do
  redis.call('ZREM', KEYS[1], member)
  local buf = prefix .. 'buf:' .. member
  local id = redis.call('HGET', buf, 'id')
  if id then
    redis.call('RENAME', buf, prefix .. 'flush:' .. id)
    if redis.call('EXISTS', buf .. ':events') == 1 then
      redis.call('RENAME', buf .. ':events', prefix .. 'flush:' .. id .. ':events')
    end
    redis.call('ZADD', KEYS[2], now + lease, id)
    table.insert(out, id)
  end
end
return out
