-- Admit one run of a function: the lossy rate limit (GCRA) and/or the throttle's start slot
-- (GCRA, non-lossy); the start path calls it once per stage (rate limit first, the throttle
-- after the singleton check), each stage with its own record. Atomic. The decision is
-- remembered, so a retried dispatch of the same run (same event id, hence same run id) gets
-- it back and is not counted twice.
-- KEYS[1]: this run's decision record for the stage
-- KEYS[2]: rate-limit TAT (ms)
-- KEYS[3]: throttle TAT (ms)
-- All keys share the function's hash tag.
-- ARGV[1]: now, unix ms
-- ARGV[2]: rate limit on (1/0)     ARGV[3]: its emission interval, ms (period/limit)
-- ARGV[4]: its tolerance, ms (emission * burst)
-- ARGV[5]: throttle on (1/0)       ARGV[6]: its emission interval, ms
-- ARGV[7]: its tolerance, ms (emission * (limit + burst - 1))
-- ARGV[8]: how long the decision is remembered, ms
-- Returns {outcome, value, replayed}: outcome 1 admitted (value: start ms: now, or later when
-- throttled), 3 rate limited (value 0); replayed 1 when the decision was made by an earlier
-- call for this run (the caller checks whether that call's start happened).
local prev = redis.call('GET', KEYS[1])
if prev then
  local sep = string.find(prev, ':')
  return {tonumber(string.sub(prev, 1, sep - 1)), string.sub(prev, sep + 1), 1}
end
local now = tonumber(ARGV[1])
local function decide(outcome, value)
  redis.call('SET', KEYS[1], outcome .. ':' .. value, 'PX', ARGV[8])
  return {outcome, value, 0}
end

if ARGV[2] == '1' then
  local emission, tolerance = tonumber(ARGV[3]), tonumber(ARGV[4])
  local tat = math.max(tonumber(redis.call('GET', KEYS[2]) or now), now)
  if now < tat - tolerance then
    return decide(3, '0')
  end
  local new_tat = tat + emission
  redis.call('SET', KEYS[2], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
end

local start = now
if ARGV[5] == '1' then
  local emission, tolerance = tonumber(ARGV[6]), tonumber(ARGV[7])
  local tat = math.max(tonumber(redis.call('GET', KEYS[3]) or now), now)
  start = math.max(now, tat - tolerance)
  local new_tat = tat + emission
  redis.call('SET', KEYS[3], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
end
return decide(1, string.format('%d', math.ceil(start)))
