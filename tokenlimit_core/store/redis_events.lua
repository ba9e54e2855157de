-- Store.get_event / ledger: several request hashes in one reply.
-- KEYS: the request hashes
-- Returns a JSON array with one [field, value, ...] array per key ([] or {} when the key is gone).
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
if #out == 0 then return '[]' end
return cjson.encode(out)
