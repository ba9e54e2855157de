-- Store.put_history, daily rows: set each (day, user, model) to the given value (set semantics) and move
-- its month's rollup by the difference, so monthly totals stay the sum of their days.
-- KEYS: none (the rollup keys follow from the rows)
-- ARGV: 1 prefix, then rows of 4: day, user, model, packed value "tokens prompt completion requests denied cost"
local prefix = ARGV[1]
for a = 2, #ARGV, 4 do
  local day, user, model, value = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local field = user .. SEP .. model
  local old = unpack_rollup(redis.call('HGET', prefix .. 'd:' .. day, field))
  local new = unpack_rollup(value)
  redis.call('HSET', prefix .. 'd:' .. day, field, value)
  redis.call('HSET', prefix .. 'du:' .. user, day .. SEP .. model, value)
  redis.call('ZADD', prefix .. 'days', 0, day)
  local d = {}
  for i = 1, 6 do d[i] = new[i] - old[i] end
  roll_period(prefix, 'm', 'months', string.sub(day, 1, 7), user, model, d)
end
return (#ARGV - 1) / 4
