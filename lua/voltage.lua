#!lua name=voltage
--[[
VoltageEMS Redis Functions. Every durable state change of the runtime is one
call to one of these functions. Each function validates all of its arguments
first and only then writes, so a rejected call writes nothing.
The one place that knows the argument order on the TypeScript side is
runtime/redis/functions.ts; change both together.
]]

local LIB_VERSION = '3'
local QUALITY = { good = true, stale = true, bad = true, ['comm-failure'] = true }
local POINT_TYPE = { m = true, s = true, c = true, a = true }

local function fail(msg)
  return redis.error_reply('EVOLTAGE ' .. msg)
end

local function is_number(s)
  local n = tonumber(s)
  return n ~= nil and n == n and n ~= math.huge and n ~= -math.huge
end

-- A plain decimal number as the runtime writes it (-12.500000, 3, 1e+21): also valid JSON.
local function is_decimal(s)
  return (string.find(s, '^-?%d+%.?%d*$') or string.find(s, '^-?%d+%.?%d*[eE][-+]?%d+$')) ~= nil
end

local function positive_int(s)
  local n = tonumber(s)
  return n ~= nil and n >= 1 and math.floor(n) == n
end

-- XADD with MAXLEN ~ and an exact count of the entries the trim removed.
local function bounded_xadd(stream, stats, stat_field, maxlen, fields)
  local before = redis.call('XLEN', stream)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  local after = redis.call('XLEN', stream)
  local dropped = before + 1 - after
  if dropped > 0 then
    redis.call('HINCRBY', stats, stat_field, dropped)
  end
  return dropped
end

local function hset_chunked(key, args)
  -- unpack() is bounded by Lua's C stack; keep each HSET well below it.
  local n = #args
  local i = 1
  while i <= n do
    local j = math.min(i + 3999, n)
    redis.call('HSET', key, unpack(args, i, j))
    i = j + 1
  end
end

-- Field/value lists for one triple of hashes (values, timestamps, qualities): a value
-- and a quality only when given, a timestamp for every field.
local function new_writes()
  return { v = {}, t = {}, q = {}, nv = 0, nt = 0, nq = 0 }
end

local function add_write(w, field, v, q, ts)
  local k
  if v ~= '' then
    k = w.nv
    w.v[k + 1] = field; w.v[k + 2] = v
    w.nv = k + 2
  end
  k = w.nt
  w.t[k + 1] = field; w.t[k + 2] = ts
  w.nt = k + 2
  if q ~= '' then
    k = w.nq
    w.q[k + 1] = field; w.q[k + 2] = q
    w.nq = k + 2
  end
end

local function flush_writes(w, vkey, tkey, qkey)
  if w.nv > 0 then hset_chunked(vkey, w.v) end
  hset_chunked(tkey, w.t)
  if w.nq > 0 then hset_chunked(qkey, w.q) end
end

--[[
c2m: one poll's batch of points from one channel.
KEYS: 1 mapping:c2m, 2 hissrv:queue, 3 cloud:queue, 4 stats:queues,
      5.. the channel's hashes in the order m, m:ts, m:q, s, s:ts, s:q, c, c:ts, c:q, a, a:ts, a:q
ARGV: 1 channel, 2 ts (ms), 3 history MAXLEN, 4 cloud MAXLEN,
      5 the points, one line each: "type id value quality\n"
        value: a decimal number such as -12.500000, or empty = no new value (a quality mark);
        quality: good, stale, bad or comm-failure, or empty = unchanged since the
        channel last sent it (the sender sends a quality whenever it changes, and a
        value only with quality good, so an empty quality beside a value means good).
Returns {points, models, history_dropped, cloud_dropped}.
Each outbox entry is {src c, id channel, ts, p}: p is the points text as given
(validated), which its consumer reads line by line: a value is good unless a
quality stands beside it; no value, only a quality, is a quality mark.
This is the hot path (one call per poll, up to thousands of points). The points
come as one text rather than four arguments each: a third of the work for the
sender and less for Redis; the outboxes take the same text rather than a JSON
made here per point (~10 % of the call: Redis's one thread is the site's scarcest
resource, the consumers are not). Qualities are written only when given (they
rarely change), so a poll writes a value and a timestamp per point. The
notification's JSON is concatenated from the validated decimal text rather than
encoded, which is safe
because ids, names, qualities and values are all checked to hold nothing JSON
would have to escape.
]]
local POINT_LINE = '^([msca]) (%d+) (%S*) (%S*)\n'
local function c2m(keys, args)
  local channel, ts, text = args[1], args[2], args[5]
  if #keys ~= 16 then return fail('c2m needs 16 keys, got ' .. #keys) end
  if #args ~= 5 then return fail('c2m needs 5 arguments (channel, ts, 2 MAXLEN, points), got ' .. #args) end
  if not string.find(channel, '^[%w_-]+$') then return fail('c2m: channel must hold only letters, digits, _ and -') end
  if not positive_int(ts) then return fail('c2m: ts must be a positive integer (ms), got ' .. tostring(ts)) end
  if not positive_int(args[3]) or not positive_int(args[4]) then return fail('c2m: MAXLEN arguments must be positive integers') end
  if text == '' then return fail('c2m: no points') end

  -- Parse and validate every line before anything is written.
  local T, I, V, Q = {}, {}, {}, {}
  local np, pos, len = 0, 1, #text
  while pos <= len do
    local _, e, t, id, v, q = string.find(text, POINT_LINE, pos)
    if not e then
      local line = string.match(text, '^[^\n]*', pos)
      return fail('c2m: point ' .. (np + 1) .. ' is not "type id value quality" with type m, s, c or a and a numeric id: ' .. string.sub(line, 1, 60))
    end
    if v ~= '' and not is_decimal(v) then return fail('c2m: value of ' .. t .. ':' .. id .. ' is not a number: ' .. v) end
    if q ~= '' and not QUALITY[q] then return fail('c2m: quality of ' .. t .. ':' .. id .. ' must be good, stale, bad or comm-failure, got ' .. q) end
    if v == '' and q == '' then return fail('c2m: point ' .. t .. ':' .. id .. ' has neither a value nor a quality') end
    np = np + 1
    T[np], I[np], V[np], Q[np] = t, id, v, q
    pos = e + 1
  end

  -- Channel hashes, one HSET per hash; the mapping lookups alongside.
  local byType = {}
  local fields = {}
  local prefix = channel .. ':'
  for i = 1, np do
    local t, id, v, q = T[i], I[i], V[i], Q[i]
    local w = byType[t]
    if not w then
      w = new_writes()
      byType[t] = w
    end
    add_write(w, id, v, q, ts)
    fields[i] = prefix .. t .. ':' .. id
  end
  local slot = { m = 5, s = 8, c = 11, a = 14 }
  for t, w in pairs(byType) do
    local k = slot[t]
    flush_writes(w, keys[k], keys[k + 1], keys[k + 2])
  end

  -- Model hashes and one notification per touched model.
  local targets = redis.call('HMGET', keys[1], unpack(fields))
  local models, order = {}, {}
  for i = 1, np do
    local target = targets[i]
    if target then
      local sep = string.find(target, ':', 1, true)
      local model = string.sub(target, 1, sep - 1)
      local name = string.sub(target, sep + 1)
      local m = models[model]
      if not m then
        m = new_writes()
        m.jv, m.jq, m.njv, m.njq = {}, {}, 0, 0
        models[model] = m
        order[#order + 1] = model
      end
      local v, q = V[i], Q[i]
      add_write(m, name, v, q, ts)
      if v ~= '' then
        m.njv = m.njv + 1
        m.jv[m.njv] = '"' .. name .. '":' .. v
      end
      if q ~= '' and q ~= 'good' then
        m.njq = m.njq + 1
        m.jq[m.njq] = '"' .. name .. '":"' .. q .. '"'
      end
    end
  end
  for _, model in ipairs(order) do
    local m = models[model]
    local base = 'modsrv:' .. model .. ':measurement'
    flush_writes(m, base, base .. ':ts', base .. ':q')
    local msg = '{"ts":' .. ts .. ',"src":"c2m","v":{' .. table.concat(m.jv, ',') .. '}'
    if m.njq > 0 then msg = msg .. ',"q":{' .. table.concat(m.jq, ',') .. '}' end
    redis.call('PUBLISH', 'modsrv:' .. model .. ':update', msg .. '}')
  end
  redis.call('PUBLISH', 'comsrv:' .. channel .. ':update', ts)

  local hd = bounded_xadd(keys[2], keys[4], 'hissrv:queue:dropped', args[3], { 'src', 'c', 'id', channel, 'ts', ts, 'p', text })
  local cd = bounded_xadd(keys[3], keys[4], 'cloud:queue:dropped', args[4], { 'src', 'c', 'id', channel, 'ts', ts, 'p', text })
  return { np, #order, hd, cd }
end

--[[
model_set: calculated values of one model.
KEYS: 1 modsrv:{model}:measurement, 2 …:ts, 3 …:q, 4 hissrv:queue, 5 stats:queues
ARGV: 1 model, 2 ts, 3 history MAXLEN, then per value: name, value, quality
]]
local function model_set(keys, args)
  local model, ts = args[1], args[2]
  if #keys ~= 5 then return fail('model_set needs 5 keys, got ' .. #keys) end
  if model == nil or model == '' then return fail('model_set: model is missing') end
  if not positive_int(ts) then return fail('model_set: ts must be a positive integer (ms)') end
  if not positive_int(args[3]) then return fail('model_set: MAXLEN must be a positive integer') end
  local n = #args - 3
  if n == 0 or n % 3 ~= 0 then return fail('model_set: values come in groups of 3 (name, value, quality)') end
  for i = 4, #args, 3 do
    if args[i] == '' then return fail('model_set: empty name') end
    if args[i + 1] ~= '' and not is_number(args[i + 1]) then return fail('model_set: value of ' .. args[i] .. ' is not a number: ' .. args[i + 1]) end
    if not QUALITY[args[i + 2]] then return fail('model_set: bad quality for ' .. args[i]) end
  end
  local v, t, q, values, quality, points = {}, {}, {}, {}, {}, {}
  for i = 4, #args, 3 do
    local name, val, qual = args[i], args[i + 1], args[i + 2]
    if val ~= '' then
      v[#v + 1] = name; v[#v + 1] = val
      t[#t + 1] = name; t[#t + 1] = ts
      values[name] = tonumber(val)
    end
    q[#q + 1] = name; q[#q + 1] = qual
    if qual ~= 'good' then quality[name] = qual end
    points[#points + 1] = { name, val, qual }
  end
  if #v > 0 then
    hset_chunked(keys[1], v)
    hset_chunked(keys[2], t)
  end
  hset_chunked(keys[3], q)
  local msg = { ts = tonumber(ts), src = 'calc', v = values }
  if next(quality) then msg.q = quality end
  redis.call('PUBLISH', 'modsrv:' .. model .. ':update', cjson.encode(msg))
  bounded_xadd(keys[4], keys[5], 'hissrv:queue:dropped', args[3], { 'src', 'm', 'id', model, 'ts', ts, 'p', cjson.encode(points) })
  return #points
end

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

--[[
site_stage: adds mapping entries to the staging hashes (a large site is staged
in several calls; site_load then swaps them in at once).
KEYS: 1 mapping:c2m:next, 2 mapping:m2c:next
ARGV: 1 kind, then pairs.
  kind c2m: channel:type:point, model:name   (a channel point feeding a model value)
  kind m2c: model:name, channel:type:point|min|max   (a model control and the point it writes, with its limits)
]]
local function site_stage(keys, args)
  if #keys ~= 2 then return fail('site_stage needs 2 keys') end
  local kind = args[1]
  if kind ~= 'c2m' and kind ~= 'm2c' then return fail('site_stage: kind must be c2m or m2c') end
  if (#args - 1) % 2 ~= 0 then return fail('site_stage: arguments come in pairs') end
  for i = 2, #args, 2 do
    local point, model = args[i], args[i + 1]
    if kind == 'm2c' then point, model = args[i + 1], args[i] end
    if kind == 'c2m' and not string.find(point, '^[%w_-]+:[msca]:%d+$') then return fail('site_stage: bad channel point ' .. point) end
    if kind == 'm2c' and not string.find(point, '^[%w_-]+:[ca]:%d+|[-%d.eE+]*|[-%d.eE+]*$') then return fail('site_stage: bad control target ' .. point) end
    if not string.find(model, '^[%w_-]+:[%w_]+$') then return fail('site_stage: bad model value ' .. model) end
  end
  local key = kind == 'c2m' and keys[1] or keys[2]
  local pairs_ = {}
  for i = 2, #args do pairs_[#pairs_ + 1] = args[i] end
  if #pairs_ > 0 then hset_chunked(key, pairs_) end
  return redis.call('HLEN', key)
end

--[[
site_load: makes the staged mapping live and records the site, atomically.
KEYS: 1 mapping:c2m, 2 mapping:m2c, 3 site:config, 4 actors, 5 mapping:c2m:next, 6 mapping:m2c:next
ARGV: 1 site config (JSON), 2 number of mapping pairs staged, 3 number of controls staged
Actors of an earlier config are forgotten (their state hashes too).
]]
local function site_load(keys, args)
  if #keys ~= 6 then return fail('site_load needs 6 keys') end
  local ok = pcall(cjson.decode, args[1] or '')
  if not ok then return fail('site_load: site config is not JSON') end
  local n = tonumber(args[2])
  if n == nil or n < 0 then return fail('site_load: the number of mapping pairs is missing') end
  local nc = tonumber(args[3])
  if nc == nil or nc < 0 then return fail('site_load: the number of controls is missing') end
  local staged = redis.call('HLEN', keys[5])
  if staged ~= n then return fail('site_load: ' .. staged .. ' mapping pairs are staged, expected ' .. n) end
  local staged_c = redis.call('HLEN', keys[6])
  if staged_c ~= nc then return fail('site_load: ' .. staged_c .. ' controls are staged, expected ' .. nc) end
  redis.call('DEL', keys[1], keys[2])
  if n > 0 then redis.call('RENAME', keys[5], keys[1]) end
  if nc > 0 then redis.call('RENAME', keys[6], keys[2]) end
  for _, id in ipairs(redis.call('SMEMBERS', keys[4])) do
    redis.call('DEL', 'actor:' .. id)
  end
  redis.call('DEL', keys[4])
  redis.call('SET', keys[3], args[1])
  return n
end

-- Which command states may follow which: generated from machines/commandMachine.ts
-- when the runtime loads the library (the line below is replaced); as written here
-- it accepts no transition at all.
local COMMAND_TRANSITIONS = {} --@@COMMAND_TRANSITIONS@@

--[[
m2c: a control command from an operator or a rule.
KEYS: 1 mapping:m2c, 2 cmd:seq
ARGV: 1 model, 2 control name, 3 value (decimal), 4 source (who), 5 ts (ms), 6 timeout (ms)
Validates the control and the value against the point's limits, records command:{id}
(status pending), appends the command to the stream cmd:{channel} and publishes a hint.
Returns the command id.
]]
local function m2c(keys, args)
  if #keys ~= 2 then return fail('m2c needs 2 keys') end
  local model, name, value, source, ts, timeout = args[1], args[2], args[3], args[4], args[5], args[6]
  if model == nil or name == nil then return fail('m2c: model and control name are required') end
  if value == nil or not is_decimal(value) then return fail('m2c: value must be a number, got ' .. tostring(value)) end
  if source == nil or source == '' then return fail('m2c: source (who sends it) is required') end
  if not positive_int(ts) or not positive_int(timeout) then return fail('m2c: ts and timeout must be positive integers (ms)') end
  local target = redis.call('HGET', keys[1], model .. ':' .. name)
  if not target then return fail('m2c: model ' .. model .. ' has no control ' .. name) end
  local point, lo, hi = string.match(target, '^([^|]+)|([^|]*)|([^|]*)$')
  local v = tonumber(value)
  if lo ~= '' and v < tonumber(lo) then return fail('m2c: ' .. value .. ' is below the minimum ' .. lo .. ' of ' .. model .. '.' .. name) end
  if hi ~= '' and v > tonumber(hi) then return fail('m2c: ' .. value .. ' is above the maximum ' .. hi .. ' of ' .. model .. '.' .. name) end
  local channel, ptype, pid = string.match(point, '^([^:]+):(%a):(%d+)$')
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
KEYS: 1 command:{id}, 2 cmd:{channel}
ARGV: 1 id, 2 status, 3 message, 4 ts, 5 consumer group, 6 stream entry id, 7 read-back value ('' none)
Checks the transition against COMMAND_TRANSITIONS, writes the status, acknowledges
and removes the stream entry, publishes cmd:result. Committing the same final
status again only acknowledges (a retry after a crash).
]]
local function cmd_result(keys, args)
  if #keys ~= 2 then return fail('cmd_result needs 2 keys') end
  local id, status, message, ts, group, entry, readback = args[1], args[2], args[3], args[4], args[5], args[6], args[7]
  local current = redis.call('HGET', keys[1], 'status')
  if not current then return fail('cmd_result: no command ' .. tostring(id)) end
  if not positive_int(ts) then return fail('cmd_result: ts must be a positive integer (ms)') end
  if readback ~= nil and readback ~= '' and not is_decimal(readback) then return fail('cmd_result: read-back value is not a number') end
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
  return 1
end

local function version()
  return LIB_VERSION
end

redis.register_function('c2m', c2m)
redis.register_function('model_set', model_set)
redis.register_function('actor_report', actor_report)
redis.register_function('site_stage', site_stage)
redis.register_function('site_load', site_load)
redis.register_function('m2c', m2c)
redis.register_function('cmd_result', cmd_result)
redis.register_function{ function_name = 'voltage_version', callback = version, flags = { 'no-writes' } }
