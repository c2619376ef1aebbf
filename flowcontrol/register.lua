-- Index one wait (step.WaitForEvent or a cancelOn rule). Idempotent: registering again
-- changes nothing, and never clears a claim made in between.
-- KEYS[1]: the wait's hash (field spec)
-- KEYS[2]: the sorted set that lists it (wait id -> expiry ms), or the event's "any" set
--          when ARGV[4] is 0 (not indexable: only the hash is written)
-- KEYS[3]: the event's set of match paths
-- All keys share the event name's hash tag.
-- ARGV[1]: spec (JSON)   ARGV[2]: the wait's expiry, unix ms   ARGV[3]: wait id
-- ARGV[4]: indexed (1/0)   ARGV[5]: match path ("" none)   ARGV[6]: now, unix ms
-- ARGV[7]: how long keys outlive the wait's expiry, ms
-- Each key expires after the latest wait it holds: a wait with a short timeout never
-- shortens the life of a set that also lists a long one.
local now, keep_until = tonumber(ARGV[6]), tonumber(ARGV[2]) + tonumber(ARGV[7])
local function extend(key)
  local ttl = redis.call('PTTL', key)
  if ttl == -1 or ttl < keep_until - now then
    redis.call('PEXPIREAT', key, keep_until)
  end
end
redis.call('HSETNX', KEYS[1], 'spec', ARGV[1])
extend(KEYS[1])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[3])
  extend(KEYS[2])
  if ARGV[5] ~= '' then
    redis.call('SADD', KEYS[3], ARGV[5])
    extend(KEYS[3])
  end
end
return 1
