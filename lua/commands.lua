-- Commands: a control command from an operator or a rule (m2c) and its end (cmd_result).

-- Which command states may follow which: generated from machines/commandMachine.ts
-- when the runtime loads the library (the line below is replaced); as written here
-- it accepts no transition at all.
local COMMAND_TRANSITIONS = {} --@@COMMAND_TRANSITIONS@@

--[[
m2c: a control command from an operator or a rule.
KEYS: 1 mapping:m2c, 2 cmd:seq, 3 site:models
ARGV: 1 model, 2 control name, 3 value (decimal), 4 source (who), 5 ts (ms), 6 timeout (ms)
Validates the control and the value against the point's limits, records command:{id}
(status pending), appends the command to the stream cmd:{channel} and publishes a hint.
Returns the command id.
]]
local function m2c(keys, args)
  if #keys ~= 3 then return fail('m2c needs 3 keys') end
  local model, name, value, source, ts, timeout = args[1], args[2], args[3], args[4], args[5], args[6]
  if model == nil or name == nil then return fail('m2c: model and control name are required') end
  if value == nil or not is_decimal(value) then return fail('m2c: value must be a number, got ' .. tostring(value)) end
  if source == nil or source == '' then return fail('m2c: source (who sends it) is required') end
  if not positive_int(ts) or not positive_int(timeout) then return fail('m2c: ts and timeout must be positive integers (ms)') end
  local target = redis.call('HGET', keys[1], model .. ':' .. name)
  if not target then
    if redis.call('SISMEMBER', keys[3], model) == 0 then return fail('m2c: no model ' .. model) end
    return fail('m2c: model ' .. model .. ' has no control ' .. name)
  end
  local point, lo, hi = string.match(target, '^([^|]+)|([^|]*)|([^|]*)$')
  local v = tonumber(value)
  if lo ~= '' and v < tonumber(lo) then return fail('m2c: ' .. value .. ' is below the minimum ' .. lo .. ' of ' .. model .. '.' .. name) end
  if hi ~= '' and v > tonumber(hi) then return fail('m2c: ' .. value .. ' is above the maximum ' .. hi .. ' of ' .. model .. '.' .. name) end
  local channel, ptype, pid = string.match(point, '^([^:]+):(%a):(%d+)$')
  -- A counter gone with Redis's data (FLUSHALL, a restart without persistence) starts again from the
  -- clock, not from 1: an id handed out before is never handed out again for another command.
  if redis.call('EXISTS', keys[2]) == 0 then redis.call('SET', keys[2], ts) end
  local id = 'cmd-' .. redis.call('INCR', keys[2])
  local deadline = tonumber(ts) + tonumber(timeout)
  redis.call('HSET', 'command:' .. id, 'id', id, 'model', model, 'name', name, 'channel', channel, 'type', ptype, 'point', pid,
    'value', value, 'source', source, 'status', 'pending', 'message', '', 'createdAt', ts, 'updatedAt', ts, 'deadline', deadline, 'version', 1)
  redis.call('XADD', 'cmd:' .. channel, '*', 'id', id, 'type', ptype, 'point', pid, 'value', value, 'deadline', deadline)
  redis.call('PUBLISH', 'cmd:' .. channel .. ':hint', id)
  redis.call('XADD', 'audit:commands', 'MAXLEN', '~', 100000, '*', 'event', 'accepted', 'id', id, 'who', source,
    'model', model, 'name', name, 'value', value, 'at', ts)
  return id
end

--[[
cmd_result: the end of a command, committed by its channel actor.
KEYS: 1 command:{id}, 2 cmd:{channel}, 3 outbox, 4 stats:outbox
ARGV: 1 id, 2 status, 3 message, 4 ts, 5 consumer group, 6 stream entry id, 7 read-back value ('' none),
      8 the outbox's bound in bytes
Checks the transition against COMMAND_TRANSITIONS, writes the status, acknowledges
and removes the stream entry, publishes cmd:result, and appends the result to the
outbox ({src k, id, ts, p}: p is JSON {model, name, value, status, readback,
source, message}) for the history writer (outbox_add in core.lua: only once a
consumer made the outbox). Committing the same final status again only
acknowledges (a retry after a crash): the result is in the outbox once.
]]
local function cmd_result(keys, args)
  if #keys ~= 4 then return fail('cmd_result needs 4 keys') end
  local id, status, message, ts, group, entry, readback = args[1], args[2], args[3], args[4], args[5], args[6], args[7]
  local current = redis.call('HGET', keys[1], 'status')
  if not current then return fail('cmd_result: no command ' .. tostring(id)) end
  if not positive_int(ts) then return fail('cmd_result: ts must be a positive integer (ms)') end
  if readback ~= nil and readback ~= '' and not is_decimal(readback) then return fail('cmd_result: read-back value is not a number') end
  if not positive_int(args[8]) then return fail('cmd_result: the outbox bound must be a positive integer (bytes)') end
  if current == status then
    redis.call('XACK', keys[2], group, entry)
    redis.call('XDEL', keys[2], entry)
    return 0
  end
  local allowed = COMMAND_TRANSITIONS[current]
  if not allowed or not allowed[status] then return fail('cmd_result: command ' .. id .. ' cannot go from ' .. current .. ' to ' .. tostring(status)) end
  redis.call('HSET', keys[1], 'status', status, 'message', message or '', 'updatedAt', ts, 'readback', readback or '')
  redis.call('HINCRBY', keys[1], 'version', 1)
  redis.call('XACK', keys[2], group, entry)
  redis.call('XDEL', keys[2], entry)
  redis.call('PUBLISH', 'cmd:result', id .. ' ' .. status)
  local cmd = redis.call('HMGET', keys[1], 'source', 'model', 'name', 'value')
  redis.call('XADD', 'audit:commands', 'MAXLEN', '~', 100000, '*', 'event', status, 'id', id, 'who', cmd[1] or '',
    'model', cmd[2] or '', 'name', cmd[3] or '', 'value', cmd[4] or '', 'at', ts, 'message', message or '')
  local result = cjson.encode({ model = cmd[2] or '', name = cmd[3] or '', value = cmd[4] or '', status = status,
    readback = readback or '', source = cmd[1] or '', message = message or '' })
  outbox_add(keys[3], keys[4], tonumber(args[8]), { 'src', 'k', 'id', id, 'ts', ts, 'p', result }, #result + #id + 32)
  return 1
end

redis.register_function('m2c', m2c)
redis.register_function('cmd_result', cmd_result)
