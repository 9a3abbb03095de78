-- Site: the mapping between channel points and model values, staged and swapped in at once.

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
KEYS: 1 mapping:c2m, 2 mapping:m2c, 3 site:config, 4 actors, 5 mapping:c2m:next, 6 mapping:m2c:next,
      7 mapping:c2m:channels, 8 mapping:c2m:gen, 9 site:models
ARGV: 1 site config (JSON, stored as given), 2 number of mapping pairs staged, 3 number of controls staged,
      then the site's model ids
Actors of an earlier config are forgotten (their state hashes too). The channels
that feed a model are listed in mapping:c2m:channels, so that c2m skips the
mapping lookup for the others. The mapping's generation moves on, so that a c2m
in another Lua state (a replica promoted later) drops the targets it cached. A
missing generation (FLUSHALL) starts again from the clock (ms), not from 1, so
that it never comes back to a value such a cache was built from. The site's
model ids are kept in site:models, so that m2c can tell an unknown model from
a model without that control: given as arguments, not decoded from the JSON
(decoding a 100k-point site's JSON here blocked Redis for half a second at
every start and every restore).
]]
local function site_load(keys, args)
  if #keys ~= 9 then return fail('site_load needs 9 keys') end
  if #args < 3 then return fail('site_load needs the site config and the counts of mapping pairs and controls') end
  if not string.find(args[1], '^%s*{') then return fail('site_load: site config is not a JSON object') end
  for i = 4, #args do
    if not string.find(args[i], '^[%w_-]+$') then return fail('site_load: bad model id ' .. args[i]) end
  end
  local n = tonumber(args[2])
  if n == nil or n < 0 then return fail('site_load: the number of mapping pairs is missing') end
  local nc = tonumber(args[3])
  if nc == nil or nc < 0 then return fail('site_load: the number of controls is missing') end
  local staged = redis.call('HLEN', keys[5])
  if staged ~= n then return fail('site_load: ' .. staged .. ' mapping pairs are staged, expected ' .. n) end
  local staged_c = redis.call('HLEN', keys[6])
  if staged_c ~= nc then return fail('site_load: ' .. staged_c .. ' controls are staged, expected ' .. nc) end
  redis.call('DEL', keys[1], keys[2], keys[7], keys[9])
  for i = 4, #args, 1000 do redis.call('SADD', keys[9], unpack(args, i, math.min(i + 999, #args))) end
  c2m_targets_clear()
  if redis.call('EXISTS', keys[8]) == 1 then
    redis.call('INCR', keys[8])
  else
    local now = redis.call('TIME')
    -- Built as text: string.format('%d') casts to a C long, 32 bits on an armv7 Redis.
    redis.call('SET', keys[8], now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000)))
  end
  if n > 0 then
    redis.call('RENAME', keys[5], keys[1])
    local channels, list = {}, {}
    for _, point in ipairs(redis.call('HKEYS', keys[1])) do
      local ch = string.match(point, '^([^:]+):')
      if not channels[ch] then
        channels[ch] = true
        list[#list + 1] = ch
      end
    end
    for i = 1, #list, 1000 do redis.call('SADD', keys[7], unpack(list, i, math.min(i + 999, #list))) end
  end
  if nc > 0 then redis.call('RENAME', keys[6], keys[2]) end
  for _, id in ipairs(redis.call('SMEMBERS', keys[4])) do
    redis.call('DEL', 'actor:' .. id)
  end
  redis.call('DEL', keys[4])
  redis.call('SET', keys[3], args[1])
  return n
end

redis.register_function('site_stage', site_stage)
redis.register_function('site_load', site_load)
