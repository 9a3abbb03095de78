-- Telemetry: a channel's poll batch (c2m) and a model's calculated values (model_set).

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
Publishes on comsrv:{channel}:update the time, a newline and the points text as
given (validated), and on modsrv:{model}:update per touched model
{"ts","src":"c2m","v":{name: value},"q"?:{name: quality}} (q only where not good).
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
  -- The channel's notification carries what was written: its subscribers need no read-back.
  redis.call('PUBLISH', 'comsrv:' .. channel .. ':update', ts .. '\n' .. text)

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

redis.register_function('c2m', c2m)
redis.register_function('model_set', model_set)
