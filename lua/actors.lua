-- Actors: the state of each actor as the supervisor and the actor see it.

--[[
actor_report: the state of one actor, as the supervisor and the actor see it,
and, when its state value changed, the entry of its transitions journal in the
same call (one round trip: a rule that fires reports a step).
KEYS: 1 actor:{id}, 2 actors (set of ids), 3 actor:{id}:transitions (stream)
ARGV: 1 id, 2 the journal's bound (XADD MAXLEN ~), 3 T: how many items of a
transition entry follow (field, value pairs; 0: none), then those T items, then
the actor's field, value pairs. Bumps `version`, publishes actor:update.
]]
local function actor_report(keys, args)
  if #keys ~= 3 then return fail('actor_report needs 3 keys') end
  local id = args[1]
  if id == nil or id == '' then return fail('actor_report: id is missing') end
  local t = tonumber(args[3])
  if t == nil or t < 0 or t % 2 ~= 0 then return fail('actor_report: the transition comes in pairs') end
  if t > 0 and not positive_int(args[2]) then return fail('actor_report: the journal bound must be a positive integer') end
  local first = 4 + t
  if (#args - first + 1) % 2 ~= 0 or #args < first + 1 then return fail('actor_report: fields come in pairs') end
  redis.call('HSET', keys[1], unpack(args, first))
  local version = redis.call('HINCRBY', keys[1], 'version', 1)
  redis.call('SADD', keys[2], id)
  if t > 0 then redis.call('XADD', keys[3], 'MAXLEN', '~', args[2], '*', unpack(args, 4, first - 1)) end
  redis.call('PUBLISH', 'actor:update', id)
  return version
end

redis.register_function('actor_report', actor_report)
