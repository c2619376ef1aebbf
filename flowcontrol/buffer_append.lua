-- Add an event to a function's open buffer (a debounce or a batch), creating it if needed.
-- KEYS[1]: the buffer's hash (fields: id, kind, first, due, n, bytes, ts, e:<event id>)
-- KEYS[2]: the buffer's event list
-- KEYS[3]: the function's due index (zset: buffer member -> due ms)
-- ARGV[1]: buffer member   ARGV[2]: now ms   ARGV[3]: the event (JSON)   ARGV[4]: event id
-- ARGV[5]: event ts ms     ARGV[6]: kind, "debounce" or "batch"        ARGV[7]: new buffer id
-- ARGV[8]: debounce: period ms; batch: timeout ms
-- ARGV[9]: debounce: timeout ms (0: none); batch: max events
-- ARGV[10]: batch: max bytes
-- Returns {status, buffer id}: status 1 added, 0 ignored (an older debounce event, or an
-- event already in the buffer: a retried ingest), 2 added and the batch is full (due now).
local now = tonumber(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'id', ARGV[7], 'kind', ARGV[6], 'first', now, 'n', 0, 'bytes', 0, 'ts', ARGV[5])
end
local id = redis.call('HGET', KEYS[1], 'id')
if redis.call('HSETNX', KEYS[1], 'e:' .. ARGV[4], 1) == 0 then
  return {0, id}
end
local due
if ARGV[6] == 'debounce' then
  if tonumber(ARGV[5]) < tonumber(redis.call('HGET', KEYS[1], 'ts')) then
    return {0, id}
  end
  redis.call('DEL', KEYS[2])
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('HSET', KEYS[1], 'ts', ARGV[5], 'n', 1, 'bytes', string.len(ARGV[3]))
  due = now + tonumber(ARGV[8])
  if tonumber(ARGV[9]) > 0 then
    due = math.min(due, tonumber(redis.call('HGET', KEYS[1], 'first')) + tonumber(ARGV[9]))
  end
else
  redis.call('RPUSH', KEYS[2], ARGV[3])
  local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
  local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', string.len(ARGV[3]))
  due = tonumber(redis.call('HGET', KEYS[1], 'first')) + tonumber(ARGV[8])
  if n >= tonumber(ARGV[9]) or bytes >= tonumber(ARGV[10]) then
    due = now
  end
end
redis.call('HSET', KEYS[1], 'due', due)
redis.call('ZADD', KEYS[3], due, ARGV[1])
if due <= now then
  return {2, id}
end
return {1, id}
