--[[
VoltageEMS Redis Functions, the shared part: argument checks and the write
helpers every domain module uses. The library is this file followed by the
domain modules (runtime/redis/library.ts LUA_MODULES), loaded as one library
`voltage` with one version; the locals defined here are visible in all of them.
Every durable state change of the runtime is one call to one Function. Each
Function validates all of its arguments first and only then writes, so a
rejected call writes nothing.
The one place that knows the argument order on the TypeScript side is
runtime/redis/core.ts; change both together.
]]

-- The library's version, filled in by runtime/redis/library.ts (LIBRARY_VERSION).
local LIB_VERSION = '0' --@@LIB_VERSION@@
local QUALITY = { good = true, stale = true, bad = true, ['comm-failure'] = true }

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

--[[
The outbox: ONE stream that every consumer reads through its own consumer group
(the history writer, each cloud link), bounded in bytes rather than entries.
- Written only while it exists: a consumer makes it (XGROUP CREATE … MKSTREAM).
  A site without consumers writes nothing there, and loses nothing by it.
- Its size is kept in the stats hash (`bytes`, the entries' payload sizes).
  Above an eighth of the bound, every 32nd add trims what every group has read
  and acknowledged (the lowest pending id, or the last delivered one, over all
  groups): that loses nothing.
- A consumer may hold entries it has acknowledged from that trim: the stats
  hash's `hold:{group}` field, the lowest id it may read again (a history
  writer's recent window, written again after the database comes back).
- Only when unread entries alone exceed the bound are the oldest dropped, and
  counted exactly in the stats hash (`dropped`): what the slowest consumer lost.
Sizes after a trim are estimated from the average entry size.
]]
local function stream_id_less(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end

-- The lowest id some group still needs: its oldest pending entry, or after its last delivered one,
-- or what it holds (`hold:{group}` in the stats hash) when that is lower.
local function outbox_needed_from(stream, stats)
  local lowest
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    local id = info['last-delivered-id']
    if tonumber(info['pending']) > 0 then
      id = redis.call('XPENDING', stream, info['name'])[2]
    end
    local hold = redis.call('HGET', stats, 'hold:' .. info['name'])
    if hold and string.find(hold, '^%d+%-%d+$') and stream_id_less(hold, id) then id = hold end
    if lowest == nil or stream_id_less(id, lowest) then lowest = id end
  end
  return lowest
end

local function outbox_add(stream, stats, maxbytes, fields, size)
  if redis.call('EXISTS', stream) == 0 then return 0 end
  redis.call('XADD', stream, '*', unpack(fields))
  local bytes = redis.call('HINCRBY', stats, 'bytes', size)
  if bytes <= maxbytes / 8 then return 0 end
  local adds = redis.call('HINCRBY', stats, 'adds', 1)
  if bytes <= maxbytes and adds % 32 ~= 0 then return 0 end
  local len = redis.call('XLEN', stream)
  local from = outbox_needed_from(stream, stats)
  if from then redis.call('XTRIM', stream, 'MINID', from) end
  local kept = redis.call('XLEN', stream)
  if kept < len then bytes = math.floor(bytes * kept / len) end
  local dropped = 0
  if bytes > maxbytes and kept > 1 then
    local keep = math.max(1, math.floor(kept * maxbytes / bytes))
    dropped = redis.call('XTRIM', stream, 'MAXLEN', keep)
    bytes = math.floor(bytes * (kept - dropped) / kept)
    redis.call('HINCRBY', stats, 'dropped', dropped)
  end
  redis.call('HSET', stats, 'bytes', bytes)
  return dropped
end

local function hset_chunked(key, args, n)
  -- unpack() is bounded by Lua's C stack; keep each HSET well below it.
  -- n: how many of args to write (a reused list holds older entries past it); all by default.
  n = n or #args
  local i = 1
  while i <= n do
    local j = math.min(i + 3999, n)
    redis.call('HSET', key, unpack(args, i, j))
    i = j + 1
  end
end

-- Field/value lists for one triple of hashes (values, timestamps, qualities): a value
-- and a quality only when given, a timestamp for every field. Filled inline by c2m's
-- loops (the hot path: the lists and their lengths held in locals, not a call per point).
-- The lists are reused from call to call (`reuse_writes`): grown once to a poll's size,
-- they are not rebuilt, rehashed as they grow and collected at every call; only the
-- first nv, nt, nq entries count.
local function reuse_writes(pool, k)
  local w = pool[k]
  if not w then
    w = { v = {}, t = {}, q = {} }
    pool[k] = w
  end
  w.nv, w.nt, w.nq = 0, 0, 0
  return w
end

local function flush_writes(w, vkey, tkey, qkey)
  if w.nv > 0 then hset_chunked(vkey, w.v, w.nv) end
  hset_chunked(tkey, w.t, w.nt)
  if w.nq > 0 then hset_chunked(qkey, w.q, w.nq) end
end


local function version()
  return LIB_VERSION
end

redis.register_function{ function_name = 'voltage_version', callback = version, flags = { 'no-writes' } }
