-- Store.reset: clear a counter's use and grants (pending charges stay), with an audit entry.
-- KEYS: 1 counter, 2 audit
-- ARGV: 1 counter name, 2 now, 3 actor
-- Returns {used, pending, granted} after the reset.
if redis.call('EXISTS', KEYS[1]) == 1 then
  local c = read_counter(KEYS[1])
  audit_entry(KEYS[2], ARGV[2], ARGV[3], 'reset',
    '{"counter":' .. cjson.encode(ARGV[1]) .. ',"used":' .. string.format('%d', c[1]) .. '}')
  redis.call('HSET', KEYS[1], 'used', 0, 'granted', 0)
end
local c = read_counter(KEYS[1])
return {c[1], c[2], c[3]}
