-- Store.oldest_pending: the oldest request of a user and model still pending (stale ids are dropped).
-- KEYS: 1 pending queue
-- ARGV: 1 prefix
while true do
  local ids = redis.call('ZRANGE', KEYS[1], 0, 9)
  if #ids == 0 then return false end
  for _, id in ipairs(ids) do
    if redis.call('HEXISTS', ARGV[1] .. 'r:' .. id, '_amount') == 1 then return id end
    redis.call('ZREM', KEYS[1], id)
  end
end
