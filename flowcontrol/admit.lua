-- Admit one run of a function: event-id dedup, then the lossy rate limit (GCRA), then the
-- throttle's start slot (GCRA, non-lossy). One call, one round trip, atomic.
-- KEYS[1]: this run's decision record (a retried ingest gets the same decision back)
-- KEYS[2]: event-id dedup key (value: the run that holds the id)
-- KEYS[3]: rate-limit TAT (ms)
-- KEYS[4]: throttle TAT (ms)
-- All keys share the function's hash tag.
-- ARGV[1]: now, unix ms            ARGV[2]: run id
-- ARGV[3]: dedup on (1/0)          ARGV[4]: dedup window, ms
-- ARGV[5]: rate limit on (1/0)     ARGV[6]: its emission interval, ms (period/limit)
-- ARGV[7]: its tolerance, ms (emission * burst)
-- ARGV[8]: throttle on (1/0)       ARGV[9]: its emission interval, ms
-- ARGV[10]: its tolerance, ms (emission * (limit + burst - 1))
-- ARGV[11]: how long a decision is remembered, ms
-- Returns {1, start_ms}: admitted, to start at start_ms (now, or later when throttled);
-- {2, holder}: a duplicate of the run holding the event id; {3, 0}: rate limited.
local prev = redis.call('GET', KEYS[1])
if prev then
  local sep = string.find(prev, ':')
  return {tonumber(string.sub(prev, 1, sep - 1)), string.sub(prev, sep + 1)}
end
local now = tonumber(ARGV[1])
local function decide(outcome, value)
  redis.call('SET', KEYS[1], outcome .. ':' .. value, 'PX', ARGV[11])
  return {outcome, value}
end

if ARGV[3] == '1' then
  local holder = redis.call('GET', KEYS[2])
  if holder and holder ~= ARGV[2] then
    return decide(2, holder)
  end
end

if ARGV[5] == '1' then
  local emission, tolerance = tonumber(ARGV[6]), tonumber(ARGV[7])
  local tat = math.max(tonumber(redis.call('GET', KEYS[3]) or now), now)
  if now < tat - tolerance then
    return decide(3, '0')
  end
  local new_tat = tat + emission
  redis.call('SET', KEYS[3], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
end

if ARGV[3] == '1' then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
end

local start = now
if ARGV[8] == '1' then
  local emission, tolerance = tonumber(ARGV[9]), tonumber(ARGV[10])
  local tat = math.max(tonumber(redis.call('GET', KEYS[4]) or now), now)
  start = math.max(now, tat - tolerance)
  local new_tat = tat + emission
  redis.call('SET', KEYS[4], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
end
return decide(1, string.format('%d', math.ceil(start)))
