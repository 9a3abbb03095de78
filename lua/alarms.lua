--[[
Alarm Functions: a module of the VoltageEMS library (no `#!lua name=` header of
its own; it is appended to the library and uses its helpers `fail` and
`positive_int`). The one place that knows the argument order on the TypeScript
side is runtime/redis/core.ts; change both together.

Every transition of an alarm is one alarm_commit: compare-and-set on the stored
version, a check that the stored state takes the event to the target (the table
below, generated from machines/alarmMachine.ts), then the writes. A rejected call
writes nothing.
]]

-- Generated from machines/alarmMachine.ts when the library is loaded (each line
-- below is replaced); as written here no transition is accepted at all.
local ALARM_TRANSITIONS = {} --@@ALARM_TRANSITIONS@@
local ALARM_ACTIVE = {} --@@ALARM_ACTIVE@@
local ALARM_INITIAL = 'normal' --@@ALARM_INITIAL@@
local ALARM_SEVERITY = { warning = true, minor = true, major = true, critical = true }
local ALARM_EVENTS_MAXLEN = 100000

-- The stored state and version, appended to every refusal so that callers can
-- name them (an API answers 409 with the state).
local function alarm_refuse(code, fn, msg, state, version)
  return fail(fn .. ': ' .. code .. ' ' .. msg .. ' [state=' .. tostring(state) .. ' version=' .. tostring(version) .. ']')
end

--[[
alarm_init: makes sure alarm:{id} exists; a restarted actor resumes from what it finds.
KEYS: 1 alarm:{id}, 2 alarm:index (set of every alarm id, for listing)
ARGV: 1 id, 2 ts (ms), 3 severity, 4 initial context (JSON), 5 definition (JSON)
Creates the alarm in the machine's initial state at version 1 when it is missing;
otherwise only refreshes its definition. Returns { created 0|1, state, version, context }.
]]
local function alarm_init(keys, args)
  if #keys ~= 2 then return fail('alarm_init needs 2 keys') end
  local id, ts, severity, context, definition = args[1], args[2], args[3], args[4], args[5]
  if id == nil or id == '' then return fail('alarm_init: id is required') end
  if not positive_int(ts) then return fail('alarm_init: ts must be a positive integer (ms)') end
  if not ALARM_SEVERITY[severity] then return fail('alarm_init: unknown severity ' .. tostring(severity)) end
  if context == nil or context == '' then return fail('alarm_init: context is required') end
  local stored = redis.call('HMGET', keys[1], 'state', 'version', 'context')
  redis.call('SADD', keys[2], id)
  if stored[1] then
    redis.call('HSET', keys[1], 'definition', definition or '')
    return { 0, stored[1], tonumber(stored[2]), stored[3] }
  end
  redis.call('HSET', keys[1], 'id', id, 'state', ALARM_INITIAL, 'version', 1, 'severity', severity, 'context', context,
    'definition', definition or '', 'since', ts, 'updatedAt', ts, 'who', '', 'why', '', 'value', '')
  return { 1, ALARM_INITIAL, 1, context }
end

--[[
alarm_commit: one transition of one alarm.
KEYS: 1 alarm:{id}, 2 alarm:active (zset: id → ms it became active), 3 alarm:events (stream),
      4 outbox, 5 stats:outbox
ARGV: 1 id, 2 expected version, 3 event, 4 target state, 5 severity, 6 context (JSON),
      7 who, 8 why, 9 value ('' none), 10 ts (ms),
      11 first-out group: the id of the first alarm of its model's group ('' none;
         kept while the alarm stays active, dropped when it leaves alarm:active),
      12 chattering '1' or '0', 13 the outbox's bound in bytes
Refusals (nothing written), each naming the stored state and version:
  NO_ALARM, VERSION_CONFLICT (someone committed first), NOT_ALLOWED (the stored
  state does not take this event to this target), BAD_ARGUMENT.
Writes the hash, keeps alarm:active, appends to alarm:events, publishes on
alarm:update, and appends the same JSON to the outbox ({src a, id, ts, p}) for
the history writer and the cloud links (outbox_add in core.lua: only once a
consumer exists, bounded, drops counted). Returns the new version.
]]
local function alarm_commit(keys, args)
  if #keys ~= 5 then return fail('alarm_commit needs 5 keys') end
  if not positive_int(args[13]) then return fail('alarm_commit: the outbox bound must be a positive integer (bytes)') end
  local id, expected, event, to, severity, context, who, why, value, ts, group, chattering =
    args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8], args[9], args[10], args[11] or '', args[12] or '0'
  local stored = redis.call('HMGET', keys[1], 'state', 'version')
  local from, version = stored[1], tonumber(stored[2])
  if not from then return alarm_refuse('NO_ALARM', 'alarm_commit', 'no alarm ' .. tostring(id), 'none', 0) end
  if not positive_int(ts) then return alarm_refuse('BAD_ARGUMENT', 'alarm_commit', 'ts must be a positive integer (ms)', from, version) end
  if not ALARM_SEVERITY[severity] then return alarm_refuse('BAD_ARGUMENT', 'alarm_commit', 'unknown severity ' .. tostring(severity), from, version) end
  if context == nil or context == '' then return alarm_refuse('BAD_ARGUMENT', 'alarm_commit', 'context is required', from, version) end
  if who == nil or who == '' then return alarm_refuse('BAD_ARGUMENT', 'alarm_commit', 'who is required', from, version) end
  if tonumber(expected) ~= version then
    return alarm_refuse('VERSION_CONFLICT', 'alarm_commit', 'alarm ' .. id .. ' is at version ' .. version .. ', not ' .. tostring(expected), from, version)
  end
  local byEvent = ALARM_TRANSITIONS[from]
  local targets = byEvent and byEvent[event]
  if not targets or not targets[to] then
    return alarm_refuse('NOT_ALLOWED', 'alarm_commit', 'alarm ' .. id .. ' in state ' .. from .. ' does not take ' .. tostring(event) .. ' to ' .. tostring(to), from, version)
  end
  local next_version = version + 1
  redis.call('HSET', keys[1], 'state', to, 'version', next_version, 'severity', severity, 'context', context,
    'updatedAt', ts, 'who', who, 'why', why or '', 'value', value or '')
  if from ~= to then redis.call('HSET', keys[1], 'since', ts) end
  redis.call('HSET', keys[1], 'chattering', chattering == '1' and '1' or '0')
  if ALARM_ACTIVE[to] then
    -- NX: the score stays the time the alarm became active, across acknowledgement and return.
    redis.call('ZADD', keys[2], 'NX', ts, id)
    if group ~= '' then redis.call('HSET', keys[1], 'group', group) end
  else
    redis.call('ZREM', keys[2], id)
    redis.call('HDEL', keys[1], 'group')
  end
  group = redis.call('HGET', keys[1], 'group') or ''
  redis.call('XADD', keys[3], 'MAXLEN', '~', ALARM_EVENTS_MAXLEN, '*', 'id', id, 'event', event, 'from', from, 'to', to,
    'severity', severity, 'who', who, 'why', why or '', 'value', value or '', 'time', ts, 'version', next_version, 'group', group)
  local change = cjson.encode({ id = id, event = event, from = from, to = to, severity = severity,
    version = next_version, time = tonumber(ts), who = who, why = why or '', group = group, chattering = chattering == '1',
    active = ALARM_ACTIVE[to] == true })
  redis.call('PUBLISH', 'alarm:update', change)
  outbox_add(keys[4], keys[5], tonumber(args[13]), { 'src', 'a', 'id', id, 'ts', ts, 'p', change }, #change + #id + 32)
  return next_version
end

redis.register_function('alarm_init', alarm_init)
redis.register_function('alarm_commit', alarm_commit)
