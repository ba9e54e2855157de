-- Helpers shared by the tokenlimit scripts; redis_scripts.py puts this file in front of each one.
-- Rules mirror tokenlimit_core/store/base.py (judge, rollup_delta) and memory.py (StoreState).

local SEP = '\31'

local function num(v)
  if v then return tonumber(v) or 0 end
  return 0
end

-- {used, pending, granted, window end or nil} of a counter hash (0 when absent)
local function read_counter(key)
  local v = redis.call('HMGET', key, 'used', 'pending', 'granted', 'exp')
  return {num(v[1]), num(v[2]), num(v[3]), v[4] and tonumber(v[4]) or nil}
end

-- Port of base.judge: returns charge (bool), decision, deciding budget (1-based, 0 = none), reason ('' = none).
-- Ties go to the first budget, as Python's min() and max() do.
local function judge(limits, counters, amount, enforce, threshold)
  local finite = {}
  for i = 1, #limits do
    if limits[i] >= 0 then
      local c = counters[i]
      finite[#finite + 1] = {i, limits[i] + c[3] - c[1] - c[2]}
    end
  end
  local fail_i, fail_left = nil, nil
  for _, f in ipairs(finite) do
    if amount > f[2] and (fail_i == nil or f[2] < fail_left) then fail_i, fail_left = f[1], f[2] end
  end
  if fail_i then
    local reason = 'too_large'
    if fail_left <= 0 then reason = 'used_up' end
    if enforce then return false, 'denied', fail_i, reason end
    return true, 'shadow_denied', fail_i, reason
  end
  if #finite == 0 then return true, 'allowed', 0, '' end
  local best, best_share = nil, nil
  for _, f in ipairs(finite) do
    local cap = limits[f[1]] + counters[f[1]][3]
    local share = 1.0
    if cap > 0 then share = (cap - f[2] + amount) / cap end
    if best == nil or share > best_share then best, best_share = f[1], share end
  end
  if best_share >= threshold then return true, 'warned', best, '' end
  return true, 'allowed', best, ''
end

-- Adds to a counter (whose state `c` was read by read_counter in this script) and keeps its window
-- end (the latest seen) and expiry (window end + grace).
local function add_counter(key, c, index, name, exp_text, grace, used, pending, granted)
  if used ~= 0 then redis.call('HINCRBY', key, 'used', used) end
  if pending ~= 0 then redis.call('HINCRBY', key, 'pending', pending) end
  if granted ~= 0 then redis.call('HINCRBY', key, 'granted', granted) end
  local exp = tonumber(exp_text)
  if not c[4] or exp > c[4] then
    redis.call('HSET', key, 'exp', exp_text)
    redis.call('EXPIREAT', key, math.ceil(exp + grace))
    redis.call('ZADD', index, exp, name)
  end
end

-- Adds to one packed rollup value "tokens prompt completion requests denied cost"; true if it existed.
local function roll_field(key, field, d)
  local old = redis.call('HGET', key, field)
  local v = {0, 0, 0, 0, 0, 0}
  if old then
    local i = 1
    for x in string.gmatch(old, '[^ ]+') do v[i] = tonumber(x); i = i + 1 end
  end
  redis.call('HSET', key, field, string.format('%d %d %d %d %d %.15g', v[1] + d[1], v[2] + d[2],
    v[3] + d[3], v[4] + d[4], v[5] + d[5], v[6] + d[6]))
  return old ~= false
end

-- Moves the rollup of (day or month, user, model) by `d`, indexed by period and by user.
local function roll_period(prefix, kind, index, period, user, model, d)
  if not roll_field(prefix .. kind .. ':' .. period, user .. SEP .. model, d) then
    redis.call('ZADD', prefix .. index, 0, period)  -- a period is listed once it has any rollup
  end
  roll_field(prefix .. kind .. 'u:' .. user, period .. SEP .. model, d)
end

-- Moves the daily rollup of (day, user, model) and the monthly one of its month ('YYYY-MM').
local function roll(prefix, day, user, model, d)
  roll_period(prefix, 'd', 'days', day, user, model, d)
  roll_period(prefix, 'm', 'months', string.sub(day, 1, 7), user, model, d)
end

-- The six numbers of a packed rollup value (zeros when absent).
local function unpack_rollup(value)
  local v = {0, 0, 0, 0, 0, 0}
  if value then
    local i = 1
    for x in string.gmatch(value, '[^ ]+') do v[i] = tonumber(x); i = i + 1 end
  end
  return v
end

-- The rollup change from `before` to `after` parts {tokens, prompt, completion, cost}.
local function delta(before, after, requests, denied)
  return {after[1] - before[1], after[2] - before[2], after[3] - before[3], requests, denied,
          after[4] - before[4]}
end

-- What an event counts for in the rollup now: {tokens, prompt, completion, cost} (base.rollup_delta).
local function event_parts(h)
  local st = redis.call('HGET', h, 'status')
  local v = redis.call('HMGET', h, 'charged', 'est_prompt', 'actual_prompt', 'actual_completion', 'cost')
  if st == 'refunded' or st == 'denied' or not st then return {0, 0, 0, 0} end
  if st == 'settled' then
    return {num(v[3]) + num(v[4]), num(v[3]), num(v[4]), num(v[5])}
  end
  return {num(v[1]), num(v[2]), num(v[1]) - num(v[2]), num(v[5])}
end

-- Moves the rollup of a request's (day, user, model) from `before` to `after` parts.
local function roll_event(prefix, h, before, after, requests, denied)
  local ev = redis.call('HMGET', h, 'day', 'user_id', 'model')
  roll(prefix, ev[1], ev[2], ev[3], delta(before, after, requests, denied))
end

-- Appends an event to the capped ledger stream; `flat` is [field, value, ...] as HGETALL gives it.
local function stream_add(stream, maxlen, flat)
  if maxlen <= 0 then return end
  local cmd = {'XADD', stream, 'MAXLEN', '~', maxlen, '*'}
  for i = 1, #flat, 2 do
    if string.sub(flat[i], 1, 1) ~= '_' then
      cmd[#cmd + 1] = flat[i]
      cmd[#cmd + 1] = flat[i + 1]
    end
  end
  redis.call(unpack(cmd))
end

local function audit_entry(list, ts, actor, action, detail_json)
  redis.call('LPUSH', list, '{"ts":' .. ts .. ',"actor":' .. cjson.encode(actor) .. ',"action":"' .. action ..
    '","detail":' .. detail_json .. '}')
end

-- A hash's HGETALL reply as one JSON string (one bulk reply parses much faster than a long array).
local function as_json(flat)
  if #flat == 0 then return '[]' end
  return cjson.encode(flat)
end
