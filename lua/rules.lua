--[[
Rule Functions: a module of the VoltageEMS library (appended to it; uses its
helpers `fail` and `positive_int`). The one place that knows the argument order
on the TypeScript side is runtime/redis/core.ts; change both together.

A rule's state (machines/ruleMachine.ts: its state and context, deadlines
included as absolute ms) lives in `rule:{id}` with a version. Every step is one
rule_commit: compare-and-set on the version, then the state and, when the step
is an execution, one entry in the bounded stream `rule:executions`. A rejected
call writes nothing. A restarted actor resumes from what rule_init returns.
A sequence rule's progress (which steps were seen, since when; JSON, owned by
runtime/domain/ruleEvaluation.ts) is the field `sequence` of the same hash,
written by the same rule_commit under the same version check.
]]

local RULE_STATES = { idle = true, holding = true, active = true, cooldown = true, disabled = true }
local RULE_EXECUTIONS_MAXLEN = 10000

--[[
rule_init: makes sure rule:{id} exists and is listed in `rules`.
KEYS: 1 rule:{id}, 2 rules (set)
ARGV: 1 id, 2 ts (ms), 3 initial state, 4 initial context (JSON), 5 definition (JSON)
Creates the rule at version 1 when missing, otherwise refreshes its definition only.
Returns { created 0|1, state, version, context, sequence progress ('' none) }.
]]
local function rule_init(keys, args)
  if #keys ~= 2 then return fail('rule_init needs 2 keys') end
  local id, ts, state, context, definition = args[1], args[2], args[3], args[4], args[5]
  if id == nil or id == '' then return fail('rule_init: id is required') end
  if not positive_int(ts) then return fail('rule_init: ts must be a positive integer (ms)') end
  if not RULE_STATES[state] then return fail('rule_init: unknown state ' .. tostring(state)) end
  if context == nil or context == '' then return fail('rule_init: context is required') end
  redis.call('SADD', keys[2], id)
  local stored = redis.call('HMGET', keys[1], 'state', 'version', 'context', 'sequence')
  if stored[1] then
    redis.call('HSET', keys[1], 'definition', definition or '')
    return { 0, stored[1], tonumber(stored[2]), stored[3], stored[4] or '' }
  end
  redis.call('HSET', keys[1], 'id', id, 'state', state, 'version', 1, 'context', context,
    'definition', definition or '', 'since', ts, 'updatedAt', ts, 'who', '')
  return { 1, state, 1, context, '' }
end

--[[
rule_commit: one step of one rule, and the control commands of the execution it
starts, sent by m2c (commands.lua) in the same call once the step is written: the
command is accepted with the step, without a second round trip behind the
channels' calls. A command m2c refuses (a value beyond the point's limits, an
unknown control) does not undo the step: its refusal is returned in its place.
The rule actor's report of the step (its `actor:{id}` entry and the entry of its
transitions journal, as actor_report in actors.lua writes them) may come with it:
one call where a fire took two.
KEYS: 1 rule:{id}, 2 rule:executions (stream), 3 rule:stats:{id}, 4 mapping:m2c, 5 cmd:seq, 6 site:models,
      with a report: 7 actor:{actor id}, 8 actors (set), 9 actor:{actor id}:transitions (stream)
ARGV: 1 id, 2 expected version, 3 state, 4 context (JSON), 5 ts (ms), 6 who,
      7 execution (JSON; '' when the step runs no action), 8 counter to count ('' none),
      9 sequence progress (JSON; '' removes it; '-' leaves it as it is),
      10 the commands' source, 11 their timeout (ms), 12 N commands, then N × (model, control, value),
      then, with a report, actor_report's ARGV (actor id, bound, T, the entry's T items, field pairs)
Refusals (nothing written): NO_RULE, VERSION_CONFLICT, BAD_ARGUMENT, each with
the stored state and version. Returns { new version, execution entry id or '',
then per command its id and '' when accepted, or '' and m2c's refusal }.
]]
local function rule_commit(keys, args)
  if #keys ~= 6 and #keys ~= 9 then return fail('rule_commit needs 6 keys, or 9 with a report') end
  local id, expected, state, context, ts, who, execution, counter, sequence, source, timeout, n =
    args[1], args[2], args[3], args[4], args[5], args[6], args[7], args[8], args[9], args[10], args[11], tonumber(args[12])
  local stored = redis.call('HMGET', keys[1], 'state', 'version')
  local from, version = stored[1], tonumber(stored[2])
  local function refuse(code, msg)
    return fail('rule_commit: ' .. code .. ' ' .. msg .. ' [state=' .. tostring(from or 'none') .. ' version=' .. tostring(version or 0) .. ']')
  end
  if not from then return refuse('NO_RULE', 'no rule ' .. tostring(id)) end
  if not RULE_STATES[state] then return refuse('BAD_ARGUMENT', 'unknown state ' .. tostring(state)) end
  if not positive_int(ts) then return refuse('BAD_ARGUMENT', 'ts must be a positive integer (ms)') end
  if context == nil or context == '' then return refuse('BAD_ARGUMENT', 'context is required') end
  if who == nil or who == '' then return refuse('BAD_ARGUMENT', 'who is required') end
  if sequence == nil then return refuse('BAD_ARGUMENT', 'the sequence progress is required (- leaves it)') end
  if n == nil or n < 0 or math.floor(n) ~= n or #args < 12 + 3 * n then return refuse('BAD_ARGUMENT', 'the commands do not match their count') end
  local report = 13 + 3 * n
  if (#args >= report) ~= (#keys == 9) then return refuse('BAD_ARGUMENT', 'a report needs its 3 keys, and 3 keys their report') end
  if #keys == 9 then
    local problem = actor_report_problem(args, report)
    if problem then return refuse('BAD_ARGUMENT', 'report: ' .. problem) end
  end
  if tonumber(expected) ~= version then
    return refuse('VERSION_CONFLICT', 'rule ' .. id .. ' is at version ' .. version .. ', not ' .. tostring(expected))
  end
  local next_version = version + 1
  redis.call('HSET', keys[1], 'state', state, 'version', next_version, 'context', context, 'updatedAt', ts, 'who', who)
  if from ~= state then redis.call('HSET', keys[1], 'since', ts) end
  if sequence == '' then redis.call('HDEL', keys[1], 'sequence')
  elseif sequence ~= '-' then redis.call('HSET', keys[1], 'sequence', sequence) end
  if counter ~= nil and counter ~= '' then redis.call('HINCRBY', keys[3], counter, 1) end
  local entry = ''
  if execution ~= nil and execution ~= '' then
    entry = redis.call('XADD', keys[2], 'MAXLEN', '~', RULE_EXECUTIONS_MAXLEN, '*', 'id', id, 'kind', 'execution',
      'from', from, 'to', state, 'version', next_version, 'time', ts, 'who', who, 'data', execution)
    redis.call('HINCRBY', keys[3], 'executions', 1)
  end
  redis.call('PUBLISH', 'rule:update', cjson.encode({ id = id, kind = 'step', from = from, to = state, version = next_version, time = tonumber(ts), entry = entry }))
  if #keys == 9 then actor_report_write({ keys[7], keys[8], keys[9] }, args, report) end
  local out = { next_version, entry }
  local m2c_keys = { keys[4], keys[5], keys[6] }
  for i = 0, n - 1 do
    local sent = m2c(m2c_keys, { args[13 + 3 * i], args[14 + 3 * i], args[15 + 3 * i], source, ts, timeout })
    if type(sent) == 'table' then
      out[#out + 1] = ''
      out[#out + 1] = sent.err or 'refused'
    else
      out[#out + 1] = sent
      out[#out + 1] = ''
    end
  end
  return out
end

--[[
rule_record: what came of executions' actions (command ids and results,
overridden or deferred actions, a deferred command sent, superseded or dropped), appended to the same stream: one entry per
execution, several executions (of any rules) per call.
KEYS: 1 rule:executions, then per record its rule:stats:{id}
ARGV: per record: id, ts (ms), execution entry id, results (JSON), C, then C
      counter/increment pairs
Every record is checked before anything is written. Returns the entries' ids.
]]
local function rule_record(keys, args)
  if #keys < 2 then return fail('rule_record needs rule:executions and a stats key per record') end
  local at, records = 1, {}
  while at <= #args do
    local id, ts, results, c = args[at], args[at + 1], args[at + 3], tonumber(args[at + 4])
    if id == nil or id == '' then return fail('rule_record: id is required') end
    if not positive_int(ts) then return fail('rule_record: ts must be a positive integer (ms)') end
    if results == nil or results == '' then return fail('rule_record: results are required') end
    if c == nil or c < 0 or math.floor(c) ~= c or at + 4 + 2 * c > #args then return fail('rule_record: the counters do not match their count') end
    for i = at + 5, at + 4 + 2 * c, 2 do
      if not string.match(args[i + 1] or '', '^%-?%d+$') then return fail('rule_record: increment of ' .. tostring(args[i]) .. ' is not an integer') end
    end
    records[#records + 1] = at
    at = at + 5 + 2 * c
  end
  if #records ~= #keys - 1 then return fail('rule_record: ' .. #records .. ' record(s) for ' .. (#keys - 1) .. ' stats key(s)') end
  local out = {}
  for k, r in ipairs(records) do
    local id, ts, of, results, c = args[r], args[r + 1], args[r + 2], args[r + 3], tonumber(args[r + 4])
    for i = r + 5, r + 4 + 2 * c, 2 do redis.call('HINCRBY', keys[k + 1], args[i], tonumber(args[i + 1])) end
    local entry = redis.call('XADD', keys[1], 'MAXLEN', '~', RULE_EXECUTIONS_MAXLEN, '*', 'id', id, 'kind', 'result',
      'of', of or '', 'time', ts, 'data', results)
    redis.call('PUBLISH', 'rule:update', cjson.encode({ id = id, kind = 'result', of = of or '', time = tonumber(ts), entry = entry }))
    out[k] = entry
  end
  return out
end

--[[
rule_notify: a rule's `notify` action: one event to the bounded stream
rule:events and the same JSON to the outbox ({src r, id rule, ts, p}) so that
the cloud links carry it (outbox_add in core.lua: bounded, drops counted).
KEYS: 1 rule:events, 2 outbox, 3 stats:outbox
ARGV: 1 rule id, 2 ts (ms), 3 event (JSON), 4 the outbox's bound in bytes
Returns the rule:events entry id.
]]
local RULE_EVENTS_MAXLEN = 10000
local function rule_notify(keys, args)
  if #keys ~= 3 then return fail('rule_notify needs 3 keys') end
  local id, ts, event = args[1], args[2], args[3]
  if id == nil or id == '' then return fail('rule_notify: id is required') end
  if not positive_int(ts) then return fail('rule_notify: ts must be a positive integer (ms)') end
  if event == nil or event == '' then return fail('rule_notify: the event is required') end
  if not positive_int(args[4]) then return fail('rule_notify: the outbox bound must be a positive integer (bytes)') end
  local entry = redis.call('XADD', keys[1], 'MAXLEN', '~', RULE_EVENTS_MAXLEN, '*', 'id', id, 'time', ts, 'event', event)
  outbox_add(keys[2], keys[3], tonumber(args[4]), { 'src', 'r', 'id', id, 'ts', ts, 'p', event }, #event + #id + 32)
  redis.call('PUBLISH', 'rule:update', cjson.encode({ id = id, kind = 'notify', time = tonumber(ts), entry = entry }))
  return entry
end

redis.register_function('rule_init', rule_init)
redis.register_function('rule_commit', rule_commit)
redis.register_function('rule_record', rule_record)
redis.register_function('rule_notify', rule_notify)
