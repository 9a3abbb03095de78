-- Cloud links: the parked messages a link sends again (actors/cloud/resend.ts, runtime/redis/cloudParked.ts).

--[[
cloud_resend_step: one step of a resend of parked messages, at once: the
parked messages the cloud took deleted and counted by what XDEL removed (so
that refused − unparked stays the number parked, whatever is replayed), what
it refused again counted, the request's cursor moved and its failures at the
old cursor forgotten; only when the request's cursor is where the caller
expects it (a commit whose reply was lost, replayed, writes nothing).
KEYS: 1 cloud:{link}:refused (stream), 2 cloud:{link}:stats, 3 cloud:{link}:resend:{request}
ARGV: 1 the cursor expected, 2 the new cursor, 3 how many were refused again,
4 the last refusal ('' none), then the parked ids the cloud took.
Returns { 1, the new cursor, unparked } when written, { 0, the stored cursor, 0 } when not.
]]
local function cloud_resend_step(keys, args)
  if #keys ~= 3 then return fail('cloud_resend_step needs 3 keys') end
  if #args < 4 then return fail('cloud_resend_step needs the cursors, the refused count and the last refusal') end
  local again = tonumber(args[3])
  if again == nil or again < 0 or math.floor(again) ~= again then return fail('cloud_resend_step: the refused count must be a whole number') end
  if args[2] == '' then return fail('cloud_resend_step: the new cursor is missing') end
  local stored = redis.call('HGET', keys[3], 'cursor')
  if stored ~= args[1] then return { 0, stored or '', 0 } end
  local unparked = 0
  if #args > 4 then unparked = redis.call('XDEL', keys[1], unpack(args, 5)) end
  if unparked > 0 then
    redis.call('HINCRBY', keys[2], 'unparked', unparked)
    redis.call('HINCRBY', keys[3], 'resent', unparked)
  end
  if again > 0 then
    redis.call('HINCRBY', keys[2], 'refusedAgain', again)
    redis.call('HINCRBY', keys[3], 'refused', again)
  end
  if args[4] ~= '' then redis.call('HSET', keys[2], 'lastRefusal', args[4]) end
  redis.call('HSET', keys[3], 'cursor', args[2], 'failures', '0')
  return { 1, args[2], unparked }
end

redis.register_function('cloud_resend_step', cloud_resend_step)
