-- Store.settle: replace a request's pending charge by its actual usage, once, in one atomic step.
-- KEYS: 1 request hash, 2 stream
-- ARGV: 1 prefix, 2 prompt, 3 completion, 4 source, 5 cost ('' = keep the estimate's), 6 now,
--       7 stream maxlen, 8 request id
-- Returns the settled event's hash (flat, as JSON), or nil when the request is not pending here.
local h = KEYS[1]
local ev = redis.call('HMGET', h, '_amount', '_keys', '_pq', 'charged', 'est_prompt', 'cost', 'day', 'user_id',
                      'model')
if not ev[1] then return false end
local amount, prompt, completion = tonumber(ev[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for _, key in ipairs(cjson.decode(ev[2])) do
  -- a counter whose window ended long ago has expired: do not bring it back
  if redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', key, 'used', prompt + completion)
    redis.call('HINCRBY', key, 'pending', 0 - amount)  -- 0 - x, never -x: Redis refuses "-0"
  end
end
local cost = num(ev[6])
local fields = {'status', 'settled', 'actual_prompt', ARGV[2], 'actual_completion', ARGV[3],
                'actual_source', ARGV[4], 'settled_at', ARGV[6]}
if ARGV[5] ~= '' then
  cost = tonumber(ARGV[5])
  fields[#fields + 1] = 'cost'; fields[#fields + 1] = ARGV[5]
end
redis.call('HSET', h, unpack(fields))
redis.call('HDEL', h, '_amount', '_pq')
redis.call('ZREM', ev[3], ARGV[8])
local charged, est_prompt = num(ev[4]), num(ev[5])
roll(ARGV[1], ev[7], ev[8], ev[9], delta({charged, est_prompt, charged - est_prompt, num(ev[6])},
                                         {prompt + completion, prompt, completion, cost}, 0, 0))
local flat = redis.call('HGETALL', h)
stream_add(KEYS[2], tonumber(ARGV[7]), flat)
return as_json(flat)
