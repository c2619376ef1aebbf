-- Let a run begin under its throttle, measured where it begins: the same GCRA as the
-- scheduling slot (from idle Limit+Burst at once, then one per Period/Limit), on its own
-- TAT, so runs whose scheduled slots passed while workers were behind do not all begin at
-- once. A retried call for a run that passed is a pass again, not a second slot.
-- KEYS[1]: the gate's TAT (ms)
-- KEYS[2]: this run's pass record
-- Both share the function's hash tag.
-- ARGV[1]: now ms   ARGV[2]: emission interval ms (period/limit)
-- ARGV[3]: tolerance ms (emission * (limit + burst - 1))   ARGV[4]: pass record TTL ms
-- ARGV[5]: the run's scheduled slot, ms (0: none)   ARGV[6]: how late a run may be and still
--          count as on time, ms
-- A run that begins on time passes: the scheduling slots are already spaced, and checking
-- them again against pass times (which lag by the dispatch latency) would only make runs
-- wait a few ms and, under load, lose their order. Late runs (a backlog) are checked.
-- Returns 0 when the run may begin, else how many ms to wait before asking again.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
local now, emission, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local slot = tonumber(ARGV[5])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local allow_at = tat - tolerance
local on_time = slot > 0 and now - slot < tonumber(ARGV[6])
if now < allow_at and not on_time then
  return math.ceil(allow_at - now)
end
local new_tat = tat + emission
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1)
redis.call('SET', KEYS[2], 1, 'PX', ARGV[4])
return 0
