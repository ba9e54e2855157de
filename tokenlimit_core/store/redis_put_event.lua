-- Store.put_history, one ledger event: write it as given (set semantics), unless it is pending here.
-- KEYS: 1 request hash, 2 ledger, 3 user ledger
-- ARGV: 1 ts, 2 request id, 3 ledger retention s (0 = keep), 4 now, then the event's field/value pairs
-- Returns 1 when written, 0 when skipped.
local h = KEYS[1]
if redis.call('HEXISTS', h, '_amount') == 1 then return 0 end
local ts, keep = tonumber(ARGV[1]), tonumber(ARGV[3])
if keep > 0 and ts + keep <= tonumber(ARGV[4]) then return 0 end
local keys = redis.call('HGET', h, '_keys')
redis.call('DEL', h)
local pairs_ = {}
for a = 5, #ARGV do pairs_[#pairs_ + 1] = ARGV[a] end
redis.call('HSET', h, unpack(pairs_))
if keys then redis.call('HSET', h, '_keys', keys) end
redis.call('ZADD', KEYS[2], ts, ARGV[2])
redis.call('ZADD', KEYS[3], ts, ARGV[2])
if keep > 0 then redis.call('EXPIREAT', h, math.ceil(ts + keep)) end
return 1
