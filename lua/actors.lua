-- Actors: the state of each actor as the supervisor and the actor see it.

-- Checks an actor report's ARGV from position `at` (id, bound, T, the entry's T items, the field pairs): nil, or what is wrong.
local function actor_report_problem(args, at)
  local id = args[at]
  if id == nil or id == '' then return 'id is missing' end
  local t = tonumber(args[at + 2])
  if t == nil or t < 0 or t % 2 ~= 0 then return 'the transition comes in pairs' end
  if t > 0 and not positive_int(args[at + 1]) then return 'the journal bound must be a positive integer' end
  local first = at + 3 + t
  if (#args - first + 1) % 2 ~= 0 or #args < first + 1 then return 'fields come in pairs' end
  return nil
end

-- Writes an actor report checked by actor_report_problem (KEYS as actor_report's, ARGV from `at`); returns the new version.
local function actor_report_write(keys, args, at)
  local t = tonumber(args[at + 2])
  local first = at + 3 + t
  redis.call('HSET', keys[1], unpack(args, first))
  local version = redis.call('HINCRBY', keys[1], 'version', 1)
  redis.call('SADD', keys[2], args[at])
  if t > 0 then redis.call('XADD', keys[3], 'MAXLEN', '~', args[at + 1], '*', unpack(args, at + 3, first - 1)) end
  redis.call('PUBLISH', 'actor:update', args[at])
  return version
end

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
  local problem = actor_report_problem(args, 1)
  if problem then return fail('actor_report: ' .. problem) end
  return actor_report_write(keys, args, 1)
end

redis.register_function('actor_report', actor_report)
