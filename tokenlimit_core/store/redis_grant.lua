-- Store.grant: extra tokens on one counter, with an audit entry, in one atomic step.
-- KEYS: 1 counter, 2 counter index, 3 audit
-- ARGV: 1 tokens, 2 window end, 3 grace s, 4 counter name, 5 now, 6 actor
-- Returns {used, pending, granted} after the grant.
add_counter(KEYS[1], read_counter(KEYS[1]), KEYS[2], ARGV[4], ARGV[2], tonumber(ARGV[3]), 0, 0, tonumber(ARGV[1]))
audit_entry(KEYS[3], ARGV[5], ARGV[6], 'grant',
  '{"counter":' .. cjson.encode(ARGV[4]) .. ',"tokens":' .. ARGV[1] .. '}')
local c = read_counter(KEYS[1])
return {c[1], c[2], c[3]}
