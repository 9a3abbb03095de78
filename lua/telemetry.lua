-- Telemetry: a channel's poll batch (c2m) and a model's calculated values (model_set).

--[[
c2m: one poll's batch of points from one channel.
KEYS: 1 mapping:c2m, 2 mapping:c2m:channels (the channels that feed a model), 3 outbox,
      4 stats:outbox, 5 site:config,
      6.. the channel's hashes in the order m, m:ts, m:q, s, s:ts, s:q, c, c:ts, c:q, a, a:ts, a:q,
      18 mapping:c2m:gen (the mapping's generation, see c2m_targets_check)
ARGV: 1 channel, 2 ts (ms), 3 the outbox's bound in bytes,
      4 the points, one line each: "type id value quality\n"
        value: a decimal number such as -12.500000, or empty = no new value (a quality mark);
        quality: good, stale, bad or comm-failure, or empty = unchanged since the
        channel last sent it (the sender sends a quality whenever it changes, and a
        value only with quality good, so an empty quality beside a value means good).
Returns {points, models, outbox_dropped, site_missing}: site_missing is 1 when
site:config is gone (FLUSHALL, a restart without persistence), so that the
runtime loads the site again; the values are written all the same.
Publishes on comsrv:{channel}:update the time, a newline and the points text as
given (validated), and on modsrv:{model}:update per touched model
{"ts","src":"c2m","v":{name: value},"q"?:{name: quality}} (q only where not good),
when anyone listens (a subscriber of that channel, or any pattern subscriber).
The outbox entry (see outbox_add in core.lua) is {src c, id channel, ts, p}: p is the points text as given
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
-- Values are made and checked by the sender (C2mBatch writes fixed-point decimals). The
-- pattern itself admits only a fixed-point decimal (-12.500000, 3, .5), so no second
-- parse of each number is needed here; a value of one or two characters ('-', '.') gets
-- the full check. Nothing that would break the JSON notifications built from them passes.
local POINT_LINE = '^([msca]) (%d+) (%-?%d*%.?%d*) (%S*)\n'
local POINT_LINE_ANY = '([msca]) (%d+) (%-?%d*%.?%d*) (%S*)\n' -- the same, unanchored (for gmatch)
--[[
Where each channel point goes, kept in the library's Lua state between calls: looking
up every point of every poll in mapping:c2m (an HMGET, then splitting each answer) was
a sixth of c2m. Per channel: whether it feeds a model at all, and per type and point id
its model (or false), its value's name and JSON key. mapping:c2m and mapping:c2m:channels are
written only by site_load, which empties this; so does a c2m that finds the site gone
(FLUSHALL), and FUNCTION LOAD starts it empty.
A site_load that ran elsewhere leaves this Lua state as it was: on a replica, which
gets site_load's writes but never runs it (a failover, then a failback, promotes a
Redis whose cache was built from an older mapping). So site_load also moves the
mapping's generation (mapping:c2m:gen, replicated like any key), and every c2m call
compares it (one GET) with the generation its cache was built from.
]]
local c2m_targets = {}
local c2m_targets_gen = nil
local function c2m_targets_clear()
  c2m_targets = {}
  c2m_targets_gen = nil
end

-- Empties the cache when the mapping's generation is not the one it was built from.
local function c2m_targets_check(genKey)
  local gen = redis.call('GET', genKey)
  if gen ~= c2m_targets_gen then
    c2m_targets = {}
    c2m_targets_gen = gen
  end
end

-- The channel's cached targets: { mapped = bool, [t] = { model, name, jkey } }, three
-- tables by point id: the model (false: the point feeds none), the value's name and its
-- JSON key ('"name":'). Strings in flat tables, not a table per point: the cache is most
-- of what the library keeps (100,000 points), and the Lua GC marks all of it every cycle
-- (a table per point made every ~60th c2m of a 100k-point site 10-30 ms).
local function channel_targets(channelsKey, channel)
  local ct = c2m_targets[channel]
  if not ct then
    ct = { mapped = redis.call('SISMEMBER', channelsKey, channel) == 1 }
    for _, t in ipairs({ 'm', 's', 'c', 'a' }) do ct[t] = { {}, {}, {} } end
    c2m_targets[channel] = ct
  end
  return ct
end

-- Lists reused by every c2m call (see reuse_writes in core.lua): a batch is parsed and
-- written before the next one is parsed, so one set serves them all. Per point type
-- the channel's writes; per model of a batch (in order of first touch) its writes; per
-- point of a mapped channel its target, value and quality (the first np count).
local CHANNEL_WRITES, MODEL_WRITES = {}, {}
local TARGETS, NAMES, JKEYS, VALUES, QUALITIES = {}, {}, {}, {}, {}

-- Parses and checks one channel's batch; nothing is written. Returns the parsed batch,
-- or nil and the reason. `ct`: the channel's cached targets (channel_targets); its
-- points not known there yet are collected to be looked up.
local function c2m_parse(channel, ts, text, ct)
  local mapped = ct.mapped
  if not positive_int(ts) then return nil, 'c2m: ts must be a positive integer (ms), got ' .. tostring(ts) end
  if text == nil or text == '' then return nil, 'c2m: no points' end
  -- Parse and validate every line, building the channel's writes as it goes (one
  -- pass). gmatch finds the lines; that they cover the whole text proves there is
  -- nothing else in it (a malformed line is then found again, with its number, by find).
  local byType = {}
  local targets, names, jkeys, V, Q = TARGETS, NAMES, JKEYS, VALUES, QUALITIES
  local misses, nmiss = {}, 0
  local np, covered = 0, 0
  -- The current type's value and timestamp lists and their lengths, kept in locals
  -- (points come grouped by type; written back to its writes when the type changes).
  local lt, w, wv, wt, nv, nt
  -- The current type's cached models, names and JSON keys.
  local cm, cn, cj
  for t, id, v, q in string.gmatch(text, POINT_LINE_ANY) do
    if t ~= lt then
      if lt then w.nv, w.nt = nv, nt end
      w = byType[t]
      if not w then
        w = reuse_writes(CHANNEL_WRITES, t)
        byType[t] = w
      end
      lt, wv, wt, nv, nt = t, w.v, w.t, w.nv, w.nt
      if mapped then
        local c = ct[t]
        cm, cn, cj = c[1], c[2], c[3]
      end
    end
    if q == '' then
      -- The common point: a value, quality unchanged.
      if v == '' then return nil, 'c2m: point ' .. t .. ':' .. id .. ' has neither a value nor a quality' end
      if #v < 3 and not is_decimal(v) then return nil, 'c2m: value of ' .. t .. ':' .. id .. ' is not a number: ' .. v end
      wv[nv + 1], wv[nv + 2] = id, v
      nv = nv + 2
      covered = covered + #id + #v + 5
    else
      if not QUALITY[q] then return nil, 'c2m: quality of ' .. t .. ':' .. id .. ' must be good, stale, bad or comm-failure, got ' .. q end
      if v ~= '' then
        if #v < 3 and not is_decimal(v) then return nil, 'c2m: value of ' .. t .. ':' .. id .. ' is not a number: ' .. v end
        wv[nv + 1], wv[nv + 2] = id, v
        nv = nv + 2
      end
      local nq = w.nq
      w.q[nq + 1], w.q[nq + 2] = id, q
      w.nq = nq + 2
      covered = covered + #id + #v + #q + 5
    end
    wt[nt + 1], wt[nt + 2] = id, ts
    nt = nt + 2
    np = np + 1
    if mapped then
      local model = cm[id]
      if model == nil then
        nmiss = nmiss + 1
        misses[nmiss] = np
        model = false
      elseif model then
        names[np], jkeys[np] = cn[id], cj[id]
      end
      targets[np] = model
      V[np], Q[np] = v, q
    end
  end
  if lt then w.nv, w.nt = nv, nt end
  if covered ~= #text then
    local pos, n = 1, 0
    while true do
      local _, e = string.find(text, POINT_LINE, pos)
      if not e then break end
      n, pos = n + 1, e + 1
    end
    local line = string.match(text, '^[^\n]*', pos)
    return nil, 'c2m: point ' .. (n + 1) .. ' is not "type id value quality" with type m, s, c or a, a numeric id and a decimal value: ' .. string.sub(line, 1, 60)
  end
  return {
    channel = channel, ts = ts, text = text, np = np, byType = byType, mapped = mapped,
    targets = targets, names = names, jkeys = jkeys, V = V, Q = Q, misses = misses, nmiss = nmiss, ct = ct,
  }
end

-- Looks up the points of a parsed batch that the cache does not know yet (once per point
-- of a channel), and remembers them. The point of each miss is found again in the text:
-- misses are rare (the first polls after a start), so the parse does not keep them all.
local function c2m_resolve(b, mappingKey)
  if b.nmiss == 0 then return end
  local order, k = {}, 0
  for t, id in string.gmatch(b.text, POINT_LINE_ANY) do
    k = k + 1
    order[k] = { t, id }
  end
  local fields = {}
  for i = 1, b.nmiss do
    local tid = order[b.misses[i]]
    fields[i] = b.channel .. ':' .. tid[1] .. ':' .. tid[2]
  end
  local got = {}
  for i = 1, b.nmiss, 1000 do
    local part = redis.call('HMGET', mappingKey, unpack(fields, i, math.min(i + 999, b.nmiss)))
    for j = 1, #part do got[i + j - 1] = part[j] end
  end
  for i = 1, b.nmiss do
    local tid, k = order[b.misses[i]], b.misses[i]
    local target = got[i]
    local c = b.ct[tid[1]]
    local id = tid[2]
    if target then
      local sep = string.find(target, ':', 1, true)
      local model, name = string.sub(target, 1, sep - 1), string.sub(target, sep + 1)
      local jkey = '"' .. name .. '":'
      c[1][id], c[2][id], c[3][id] = model, name, jkey
      b.targets[k], b.names[k], b.jkeys[k] = model, name, jkey
    else
      c[1][id] = false
      b.targets[k] = false
    end
  end
end

-- Whether a model's notification has a subscriber: one on its channel, or any pattern.
local function listened(model)
  if redis.call('PUBSUB', 'NUMPAT') > 0 then return true end
  return redis.call('PUBSUB', 'NUMSUB', 'modsrv:' .. model .. ':update')[2] > 0
end

-- Writes one parsed batch: the channel's hashes, its models' hashes and notifications,
-- the outbox. hkeys: the channel's 12 hashes from index `base` on. Returns points, models, dropped.
local function c2m_apply(b, mappingKey, outboxKey, statsKey, bound, hkeys, base)
  local ts = b.ts
  -- Channel hashes, one HSET per hash.
  local slot = { m = 0, s = 3, c = 6, a = 9 }
  for t, w in pairs(b.byType) do
    local k = base + slot[t]
    flush_writes(w, hkeys[k], hkeys[k + 1], hkeys[k + 2])
  end

  -- Model hashes and one notification per touched model.
  if b.mapped then c2m_resolve(b, mappingKey) end
  local targets, names, jkeys, V, Q = b.targets, b.names, b.jkeys, b.V, b.Q
  local models, order = {}, {}
  -- The current model's writes and their value and timestamp lists in locals, as in
  -- c2m_parse (a channel's points mostly feed one model; written back on a switch).
  local lm, m, mv, mt, nv, nt
  for i = 1, b.mapped and b.np or 0 do
    local model = targets[i]
    if model then
      local name = names[i]
      if model ~= lm then
        if lm then m.nv, m.nt = nv, nt end
        m = models[model]
        if not m then
          m = reuse_writes(MODEL_WRITES, #order + 1)
          m.jv, m.jq, m.njv, m.njq = nil, nil, 0, 0
          -- A notification nobody would receive is not built: PUBLISH to no subscriber is
          -- unobservable, and building it was a tenth of c2m. Any pattern subscriber counts
          -- as a listener (which channels it matches is not asked).
          m.listened = listened(model)
          if m.listened then m.jv, m.jq = {}, {} end
          models[model] = m
          order[#order + 1] = model
        end
        lm, mv, mt, nv, nt = model, m.v, m.t, m.nv, m.nt
      end
      local v, q = V[i], Q[i]
      if v ~= '' then
        mv[nv + 1], mv[nv + 2] = name, v
        nv = nv + 2
      end
      mt[nt + 1], mt[nt + 2] = name, ts
      nt = nt + 2
      if q ~= '' then
        local nq = m.nq
        m.q[nq + 1], m.q[nq + 2] = name, q
        m.nq = nq + 2
      end
      if m.listened then
        if v ~= '' then
          m.njv = m.njv + 1
          m.jv[m.njv] = jkeys[i] .. v
        end
        if q ~= '' and q ~= 'good' then
          m.njq = m.njq + 1
          m.jq[m.njq] = jkeys[i] .. '"' .. q .. '"'
        end
      end
    end
  end
  if lm then m.nv, m.nt = nv, nt end
  for _, model in ipairs(order) do
    local m = models[model]
    local mbase = 'modsrv:' .. model .. ':measurement'
    flush_writes(m, mbase, mbase .. ':ts', mbase .. ':q')
    if m.listened then
      local msg = '{"ts":' .. ts .. ',"src":"c2m","v":{' .. table.concat(m.jv, ',') .. '}'
      if m.njq > 0 then msg = msg .. ',"q":{' .. table.concat(m.jq, ',') .. '}' end
      redis.call('PUBLISH', 'modsrv:' .. model .. ':update', msg .. '}')
    end
  end
  -- The channel's notification carries what was written: its subscribers need no read-back.
  local channel, text = b.channel, b.text
  redis.call('PUBLISH', 'comsrv:' .. channel .. ':update', ts .. '\n' .. text)

  local dropped = outbox_add(outboxKey, statsKey, bound, { 'src', 'c', 'id', channel, 'ts', ts, 'p', text }, #text + #channel + 32)
  return b.np, #order, dropped
end

local function c2m(keys, args)
  if #keys ~= 18 then return fail('c2m needs 18 keys, got ' .. #keys) end
  if #args ~= 4 then return fail('c2m needs 4 arguments (channel, ts, outbox bound, points), got ' .. #args) end
  if not positive_int(args[3]) then return fail('c2m: the outbox bound must be a positive integer (bytes)') end
  local missing = redis.call('EXISTS', keys[5]) == 0
  if missing then c2m_targets_clear() end
  c2m_targets_check(keys[18])
  if not string.find(args[1], '^[%w_-]+$') then return fail('c2m: channel must hold only letters, digits, _ and -') end
  local b, err = c2m_parse(args[1], args[2], args[4], channel_targets(keys[2], args[1]))
  if not b then return fail(err) end
  local np, nm, dropped = c2m_apply(b, keys[1], keys[3], keys[4], tonumber(args[3]), keys, 6)
  return { np, nm, dropped, missing and 1 or 0 }
end

--[[
c2m_group: the batches of several channels whose polls ended together, in one
call (group commit: one round trip and one wake-up of Redis instead of one per
channel). Each batch is checked and written exactly as c2m does it, in order; a
batch that fails its check is not written and does not stop the others.
KEYS: 1 mapping:c2m, 2 mapping:c2m:channels, 3 outbox, 4 stats:outbox, 5 site:config,
      then 12 per channel, in the order of c2m's keys 6..17, and last mapping:c2m:gen
ARGV: 1 the outbox's bound in bytes, then per channel: channel, ts, points
Returns {site_missing, then per channel: points, models, outbox_dropped, error}
(error '' when the batch was written; then points is 0 and error the reason).
]]
local function c2m_group(keys, args)
  local n = (#args - 1) / 3
  if n < 1 or n ~= math.floor(n) then return fail('c2m_group: arguments are the outbox bound, then channel, ts, points per channel') end
  if #keys ~= 6 + 12 * n then return fail('c2m_group needs 6 + 12 keys per channel, got ' .. #keys) end
  if not positive_int(args[1]) then return fail('c2m_group: the outbox bound must be a positive integer (bytes)') end
  local bound = tonumber(args[1])
  local missing = redis.call('EXISTS', keys[5]) == 0
  if missing then c2m_targets_clear() end
  c2m_targets_check(keys[#keys])
  local out = { missing and 1 or 0 }
  for i = 0, n - 1 do
    local channel = args[2 + 3 * i]
    local b, err
    if string.find(channel, '^[%w_-]+$') then
      b, err = c2m_parse(channel, args[3 + 3 * i], args[4 + 3 * i], channel_targets(keys[2], channel))
    else
      err = 'c2m: channel must hold only letters, digits, _ and -'
    end
    local r = #out
    if b then
      local np, nm, dropped = c2m_apply(b, keys[1], keys[3], keys[4], bound, keys, 6 + 12 * i)
      out[r + 1], out[r + 2], out[r + 3], out[r + 4] = np, nm, dropped, ''
    else
      out[r + 1], out[r + 2], out[r + 3], out[r + 4] = 0, 0, 0, err
    end
  end
  return out
end

--[[
model_set: calculated values of one model.
KEYS: 1 modsrv:{model}:measurement, 2 …:ts, 3 …:q, 4 outbox, 5 stats:outbox
ARGV: 1 model, 2 ts, 3 the outbox's bound in bytes, then per value: name, value, quality
The outbox entry is {src m, id model, ts, p}: p is JSON [[name, value, quality], …]
(value '' for none). Returns {values, outbox_dropped}.
]]
local function model_set(keys, args)
  local model, ts = args[1], args[2]
  if #keys ~= 5 then return fail('model_set needs 5 keys, got ' .. #keys) end
  if model == nil or model == '' then return fail('model_set: model is missing') end
  if not positive_int(ts) then return fail('model_set: ts must be a positive integer (ms)') end
  if not positive_int(args[3]) then return fail('model_set: the outbox bound must be a positive integer (bytes)') end
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
  local p = cjson.encode(points)
  local dropped = outbox_add(keys[4], keys[5], tonumber(args[3]), { 'src', 'm', 'id', model, 'ts', ts, 'p', p }, #p + #model + 32)
  return { #points, dropped }
end

redis.register_function('c2m', c2m)
redis.register_function('c2m_group', c2m_group)
redis.register_function('model_set', model_set)
