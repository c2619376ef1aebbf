-- Append the steps an app checkpointed during one call, if that call is still the one in
-- flight (generation fencing: a dispatch the executor has given up on must not fork the run).
-- KEYS[1]: the run's call in flight, "<call>:<generation>" (set by BeginCall); KEYS[2]: the
-- run's checkpointed ops (list); KEYS[3]: their total size in bytes
-- ARGV[1]: the checkpoint's "<call>:<generation>"; ARGV[2]: TTL in ms; ARGV[3]: max total bytes;
-- ARGV[4..]: the ops (JSON)
-- Returns 1 when appended, 0 when the generation is not the one in flight, -1 when the
-- total would exceed ARGV[3].
local gen = redis.call('GET', KEYS[1])
if gen ~= ARGV[1] then
  return 0
end
local size = 0
for i = 4, #ARGV do
  size = size + #ARGV[i]
end
local total = tonumber(redis.call('GET', KEYS[3]) or '0')
if total + size > tonumber(ARGV[3]) then
  return -1
end
for i = 4, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
redis.call('SET', KEYS[3], total + size, 'PX', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
