-- Take a singleton lock for a new run.
-- KEYS[1]: the lock (value: the holder's run id)
-- ARGV[1]: the new run's id; ARGV[2]: mode, "skip" or "cancel"; ARGV[3]: lease in ms
-- Returns {1} when the run holds the lock (newly, or already: a retried ingest);
-- {0, holder} in skip mode when another run holds it (nothing changes);
-- {2, holder} in cancel mode: the lock moved to the new run, the caller cancels holder.
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return {1}
end
if ARGV[2] == 'cancel' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return {2, cur}
end
return {0, cur}
