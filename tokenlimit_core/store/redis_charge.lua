-- Store.charge: check and charge one request against all its budgets, in one atomic step.
-- KEYS: 1 request hash, 2 pending queue, 3 ledger, 4 user ledger, 5 stream, 6 counter index, 7 seq,
--       7+i counter of budget i
-- ARGV[1]: a JSON array of strings (one argument costs the client far less than ~25):
--       1 prefix, 2 amount, 3 enforce (1/0), 4 warn threshold, 5 budgets n, 6 grace s, 7 stream maxlen,
--       8 now, 9 ledger retention s (0 = keep), 10 ts, 11 request id, 12 day, 13 user, 14 model,
--       15 estimated prompt, 16 cost ('' = none), then n x (limit, window end, counter name),
--       then the event's other fields as a JSON array [field, value, ...] of strings
-- Returns {charged, verdict's charge, decision, deciding (0 = none), reason, duplicate,
--          then used, pending, granted of each budget before the charge}.
local A = cjson.decode(ARGV[1])
local prefix, amount = A[1], tonumber(A[2])
local enforce, threshold, n = A[3] == '1', tonumber(A[4]), tonumber(A[5])
local grace, maxlen, now, keep = tonumber(A[6]), tonumber(A[7]), tonumber(A[8]), tonumber(A[9])
local ts, rid = tonumber(A[10]), A[11]
local h = KEYS[1]
local limits, counters, names, ends = {}, {}, {}, {}
for i = 1, n do
  local a = 16 + (i - 1) * 3
  limits[i], ends[i], names[i] = tonumber(A[a + 1]), A[a + 2], A[a + 3]
  counters[i] = read_counter(KEYS[7 + i])
end

local function reply(charged, charge, decision, deciding, reason, duplicate)
  local out = {charged and 1 or 0, charge and 1 or 0, decision, deciding, reason, duplicate and 1 or 0}
  for i = 1, n do
    for j = 1, 3 do out[#out + 1] = counters[i][j] end
  end
  return out
end

if redis.call('EXISTS', h) == 1 then
  -- charged before (a retry, or another node): change nothing
  local charge, decision, deciding, reason = judge(limits, counters, 0, enforce, threshold)
  return reply(redis.call('HGET', h, 'status') ~= 'denied', charge, decision, deciding, reason, true)
end

local charge, decision, deciding, reason = judge(limits, counters, amount, enforce, threshold)
local charged = 0
if charge then charged = amount end
local fields = {'request_id', rid, 'ts', A[10], 'day', A[12], 'user_id', A[13], 'model', A[14],
                'est_prompt', A[15], 'decision', decision, 'charged', charged,
                'status', charge and 'pending' or 'denied'}
if A[16] ~= '' then fields[#fields + 1] = 'cost'; fields[#fields + 1] = A[16] end
if deciding > 0 then fields[#fields + 1] = 'deciding'; fields[#fields + 1] = names[deciding] end
if reason ~= '' then fields[#fields + 1] = 'reason'; fields[#fields + 1] = reason end
for _, x in ipairs(cjson.decode(A[17 + n * 3])) do fields[#fields + 1] = x end
stream_add(KEYS[5], maxlen, fields)

if charge then
  local keys = {}
  for i = 1, n do
    add_counter(KEYS[7 + i], counters[i], KEYS[6], names[i], ends[i], grace, 0, amount, 0)
    keys[i] = KEYS[7 + i]
  end
  local encoded = '[]'
  if n > 0 then encoded = cjson.encode(keys) end
  local seq = redis.call('INCR', KEYS[7])
  redis.call('ZADD', KEYS[2], seq, rid)
  if seq % 100 == 0 then redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - grace) end
  for _, x in ipairs({'_amount', amount, '_keys', encoded, '_pq', KEYS[2]}) do fields[#fields + 1] = x end
end
redis.call('HSET', h, unpack(fields))

redis.call('ZADD', KEYS[3], ts, rid)
redis.call('ZADD', KEYS[4], ts, rid)
if keep > 0 then
  redis.call('EXPIREAT', h, math.ceil(ts + keep))
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - keep)
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - keep)
end

local est_prompt, cost = tonumber(A[15]), tonumber(A[16]) or 0
local parts = {0, 0, 0, 0}
if charge then parts = {amount, est_prompt, amount - est_prompt, cost} end
roll(prefix, A[12], A[13], A[14], delta({0, 0, 0, 0}, parts, 1, charge and 0 or 1))
return reply(charge, charge, decision, deciding, reason, false)
