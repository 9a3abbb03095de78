-- Actors: the state of each actor as the supervisor and the actor see it.

--[[
actor_report: the state of one actor, as the supervisor and the actor see it.
KEYS: 1 actor:{id}, 2 actors (set of ids)
ARGV: 1 id, then field, value pairs. Bumps `version`, publishes actor:update.
]]
local function actor_report(keys, args)
  if #keys ~= 2 then return fail('actor_report needs 2 keys') end
  local id = args[1]
  if id == nil or id == '' then return fail('actor_report: id is missing') end
  if (#args - 1) % 2 ~= 0 or #args < 3 then return fail('actor_report: fields come in pairs') end
  redis.call('HSET', keys[1], unpack(args, 2))
  local version = redis.call('HINCRBY', keys[1], 'version', 1)
  redis.call('SADD', keys[2], id)
  redis.call('PUBLISH', 'actor:update', id)
  return version
end

redis.register_function('actor_report', actor_report)
