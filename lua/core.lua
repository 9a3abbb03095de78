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


local function version()
  return LIB_VERSION
end

redis.register_function{ function_name = 'voltage_version', callback = version, flags = { 'no-writes' } }
