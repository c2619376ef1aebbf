-- Claim a wait, once.
-- KEYS[1]: the wait's hash (fields: spec, claimed)
-- KEYS[2]: the sorted set that lists the wait (same hash tag)
-- ARGV[1]: the value to store as the claim (the resuming event's JSON, or a marker)
-- ARGV[2]: the wait id (its member in KEYS[2])
-- Returns {1} when this call claimed the wait; {0, value} when it had been claimed, with
-- the value stored then; {-1} when the wait does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1}
end
local prev = redis.call('HGET', KEYS[1], 'claimed')
if prev then
  return {0, prev}
end
redis.call('HSET', KEYS[1], 'claimed', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return {1}
