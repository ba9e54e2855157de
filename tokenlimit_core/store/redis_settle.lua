-- Store.settle: replace a request's pending charge by its actual usage, once, in one atomic step.
-- KEYS: 1 request hash, 2 stream
-- ARGV: 1 prefix, 2 prompt, 3 completion, 4 source, 5 cost ('' = keep the estimate's), 6 now,
--       7 stream maxlen, 8 request id
-- Returns the settled event's hash (flat), or nil when the request is not pending here.
local h = KEYS[1]
local amount = redis.call('HGET', h, '_amount')
if not amount then return false end
amount = tonumber(amount)
local total = tonumber(ARGV[2]) + tonumber(ARGV[3])
for _, key in ipairs(cjson.decode(redis.call('HGET', h, '_keys'))) do
  -- a counter whose window ended long ago has expired: do not bring it back
  if redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', key, 'used', total)
    redis.call('HINCRBY', key, 'pending', 0 - amount)  -- 0 - x, never -x: Redis refuses "-0"
  end
end
local before = event_parts(h)
redis.call('HSET', h, 'status', 'settled', 'actual_prompt', ARGV[2], 'actual_completion', ARGV[3],
  'actual_source', ARGV[4], 'settled_at', ARGV[6])
if ARGV[5] ~= '' then redis.call('HSET', h, 'cost', ARGV[5]) end
roll_event(ARGV[1], h, before, event_parts(h), 0, 0)
redis.call('ZREM', redis.call('HGET', h, '_pq'), ARGV[8])
redis.call('HDEL', h, '_amount', '_pq')
stream_add(KEYS[2], tonumber(ARGV[7]), h)
return redis.call('HGETALL', h)
