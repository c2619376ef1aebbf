-- Add an event to a function's open buffer (a debounce or a batch), creating it if needed.
-- A batch that becomes full is closed at once (detached to flush:<id> and due now), so the
-- next event opens a new one and no batch exceeds its size.
-- KEYS[1]: the buffer's hash (fields: id, kind, first, due, n, bytes, ts)
-- KEYS[2]: the buffer's event list
-- KEYS[3]: the function's due index (zset: buffer member -> due ms)
-- KEYS[4]: the function's flushing index (zset: buffer id -> lease expiry ms)
-- KEYS[5]: this event's record (value: the buffer it went to), kept ARGV[11] ms, so the
--          same event sent again after the buffer flushed is not buffered twice
-- ARGV[1]: buffer member   ARGV[2]: now ms   ARGV[3]: the event (JSON)   ARGV[4]: event id
-- ARGV[5]: event ts ms     ARGV[6]: kind, "debounce" or "batch"        ARGV[7]: new buffer id
-- ARGV[8]: debounce: period ms; batch: timeout ms
-- ARGV[9]: debounce: timeout ms (0: none); batch: max events
-- ARGV[10]: batch: max bytes   ARGV[11]: how long the event's record is kept, ms
-- ARGV[12]: key prefix (the function's hash tag): flushing buffers are prefix..'flush:'..id
-- Returns {status, buffer id}: status 1 added, 0 ignored (an older debounce event, or an
-- event already buffered: a retried ingest or a duplicate), 2 added and a batch is due now.
local seen = redis.call('GET', KEYS[5])
if seen then
  return {0, seen}
end
local now, size = tonumber(ARGV[2]), string.len(ARGV[3])
local function open(id)
  redis.call('HSET', KEYS[1], 'id', id, 'kind', ARGV[6], 'first', now, 'n', 0, 'bytes', 0, 'ts', ARGV[5])
end
-- close detaches the open batch: a flusher claims it at once.
local function close()
  local id = redis.call('HGET', KEYS[1], 'id')
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('RENAME', KEYS[1], ARGV[12] .. 'flush:' .. id)
  redis.call('RENAME', KEYS[2], ARGV[12] .. 'flush:' .. id .. ':events')
  redis.call('ZADD', KEYS[4], now, id)
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  open(ARGV[7])
elseif ARGV[6] == 'batch' and tonumber(redis.call('HGET', KEYS[1], 'n')) > 0
    and tonumber(redis.call('HGET', KEYS[1], 'bytes')) + size > tonumber(ARGV[10]) then
  -- This event would take the batch over its byte limit: it starts the next batch.
  close()
  open(ARGV[7])
end
local id = redis.call('HGET', KEYS[1], 'id')
local due
if ARGV[6] == 'debounce' then
  if tonumber(ARGV[5]) < tonumber(redis.call('HGET', KEYS[1], 'ts')) then
    return {0, id}
  end
  redis.call('DEL', KEYS[2])
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('HSET', KEYS[1], 'ts', ARGV[5], 'n', 1, 'bytes', size)
  due = now + tonumber(ARGV[8])
  if tonumber(ARGV[9]) > 0 then
    due = math.min(due, tonumber(redis.call('HGET', KEYS[1], 'first')) + tonumber(ARGV[9]))
  end
else
  redis.call('RPUSH', KEYS[2], ARGV[3])
  local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
  local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', size)
  if n >= tonumber(ARGV[9]) or bytes >= tonumber(ARGV[10]) then
    redis.call('SET', KEYS[5], id, 'PX', ARGV[11])
    close()
    return {2, id}
  end
  due = tonumber(redis.call('HGET', KEYS[1], 'first')) + tonumber(ARGV[8])
end
redis.call('SET', KEYS[5], id, 'PX', ARGV[11])
redis.call('HSET', KEYS[1], 'due', due)
redis.call('ZADD', KEYS[3], due, ARGV[1])
if due <= now then
  return {2, id}
end
return {1, id}
