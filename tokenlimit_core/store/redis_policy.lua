-- Store.save_policy: store the policy under the next revision, with an audit entry.
-- KEYS: 1 revision, 2 policy hash, 3 audit
-- ARGV: 1 policy JSON, 2 actor, 3 now
-- Returns the new revision.
local revision = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], 'json', ARGV[1], 'revision', revision, 'updated_at', ARGV[3], 'actor', ARGV[2])
audit_entry(KEYS[3], ARGV[3], ARGV[2], 'policy', '{"revision":' .. string.format('%d', revision) .. '}')
return revision
