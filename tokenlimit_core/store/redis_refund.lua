-- Store.refund: give back what a pending or settled request counts for, once, in one atomic step.
-- KEYS: 1 request hash, 2 stream, 3 audit
-- ARGV: 1 prefix, 2 actor, 3 now, 4 stream maxlen, 5 request id
-- Returns the refunded event's hash (flat, as JSON), or nil when there is nothing to refund.
local h = KEYS[1]
local status = redis.call('HGET', h, 'status')
if not status or status == 'refunded' or status == 'denied' then return false end
local amount = redis.call('HGET', h, '_amount')
local before = event_parts(h)
local keys = redis.call('HGET', h, '_keys')
if keys then
  for _, key in ipairs(cjson.decode(keys)) do
    if redis.call('EXISTS', key) == 1 then
      if amount then
        redis.call('HINCRBY', key, 'pending', 0 - tonumber(amount))
      else
        redis.call('HINCRBY', key, 'used', 0 - before[1])
      end
    end
  end
end
redis.call('HSET', h, 'status', 'refunded')
roll_event(ARGV[1], h, before, {0, 0, 0, 0}, 0, 0)
local queue = redis.call('HGET', h, '_pq')
if queue then redis.call('ZREM', queue, ARGV[5]) end
redis.call('HDEL', h, '_amount', '_pq')
audit_entry(KEYS[3], ARGV[3], ARGV[2], 'refund',
  '{"request_id":' .. cjson.encode(ARGV[5]) .. ',"tokens":' .. string.format('%d', before[1]) .. '}')
local flat = redis.call('HGETALL', h)
stream_add(KEYS[2], tonumber(ARGV[4]), flat)
return as_json(flat)
