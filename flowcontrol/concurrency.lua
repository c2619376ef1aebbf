-- Take a concurrency lease for a step, fairly: runs that have waited longest (by score:
-- run time minus priority) go first.
-- KEYS[1]: leases (zset: lease id -> expiry ms)
-- KEYS[2]: waiting runs (zset: run id -> score)
-- KEYS[3]: when each waiting run last asked (zset: run id -> ms), to forget runs that left
-- ARGV[1]: now ms   ARGV[2]: limit   ARGV[3]: lease id   ARGV[4]: lease expiry ms
-- ARGV[5]: run id   ARGV[6]: run score   ARGV[7]: how long a silent waiter is kept, ms
-- Returns 1 when the lease is held (new or renewed), 0 when the step must wait.
-- Every key expires once nothing renews it: the leases a while after the last lease's
-- expiry, the waiting sets a while after the last waiter asked.
local now = tonumber(ARGV[1])
local keep = math.ceil(tonumber(ARGV[7]) * 2)
local function hold()
  redis.call('PEXPIREAT', KEYS[1], tonumber(ARGV[4]) + keep)
  redis.call('PEXPIRE', KEYS[2], keep)
  redis.call('PEXPIRE', KEYS[3], keep)
  return 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for _, run in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[7]))) do
  redis.call('ZREM', KEYS[2], run)
  redis.call('ZREM', KEYS[3], run)
end
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
  return hold()
end
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[2], 'NX', ARGV[6], ARGV[5])
redis.call('ZADD', KEYS[3], now, ARGV[5])
if free > 0 and redis.call('ZRANK', KEYS[2], ARGV[5]) < free then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
  redis.call('ZREM', KEYS[2], ARGV[5])
  redis.call('ZREM', KEYS[3], ARGV[5])
  return hold()
end
redis.call('PEXPIRE', KEYS[2], keep)
redis.call('PEXPIRE', KEYS[3], keep)
return 0
