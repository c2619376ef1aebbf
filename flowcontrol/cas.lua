-- Compare and set (or delete) a lock.
-- KEYS[1]: the lock
-- ARGV[1]: the value it must hold; ARGV[2]: the new value, or "" to delete; ARGV[3]: lease in ms
-- Returns 1 when the lock held ARGV[1] and was changed, else 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
