"""The Lua scripts of :mod:`fastqueue._redis._queue`, one per RedisQueue operation.

Redis runs a script atomically and logs its effects together (AOF, replicas), which is what makes
each operation one round trip *and* all-or-nothing: a put appends only what the bound allows, a
take acknowledges exactly what it replies with. Every script's key is the stream (KEYS[1]).
"""

from __future__ import annotations

from typing import Final

__all__ = ["ACK", "FORGET", "PUT", "TAKE"]

# KEYS[1] stream; ARGV[1] maxsize (0: unbounded); ARGV[2..] the messages. Returns how many of the
# first messages were appended (all of them unless the bound stopped it).
PUT: Final = b"""
local key = KEYS[1]
local room = #ARGV - 1
local maxsize = tonumber(ARGV[1])
if maxsize > 0 then
  local free = maxsize - redis.call('XLEN', key)
  if free < room then room = free end
end
for i = 2, room + 1 do
  redis.call('XADD', key, '*', 'd', ARGV[i])
end
if room < 0 then return 0 end
return room
"""

# Lua: acknowledges (and deletes) each of the ids in `csv` (ascending, comma-separated) that is
# still pending to `consumer`; returns how many. An id missing from the count was claimed by
# another consumer meanwhile (this one held it longer than that one's claim_after).
ACK_FN: Final = b"""
local function ack_mine(key, group, consumer, csv)
  local want = {}
  for id in string.gmatch(csv, '[^,]+') do want[#want + 1] = id end
  if #want == 0 then return 0 end
  local mine = {}
  local pending = redis.call('XPENDING', key, group, want[1], want[#want], #want + 1000,
                             consumer)
  for _, p in ipairs(pending) do mine[p[1]] = true end
  local ids = {}
  for _, id in ipairs(want) do
    if mine[id] then ids[#ids + 1] = id end
  end
  for i = 1, #ids, 1000 do
    local part = {unpack(ids, i, math.min(i + 999, #ids))}
    redis.call('XACK', key, group, unpack(part))
    redis.call('XDEL', key, unpack(part))
  end
  return #ids
end
"""

# KEYS[1] stream; ARGV: group, consumer, n, min idle ms for claims, ack (1) or not (0), and ids
# taken unacknowledged earlier to acknowledge first (see ACK_FN; "" for none). Returns
# {cursor, acked} when there is nothing to take (cursor: the group's last-delivered id, from
# which XREAD BLOCK waits for a new entry); else {"", acked, ids, lengths, data}: the ids and the
# messages' lengths as comma-separated decimals and the messages back to back. (Three strings
# instead of a reply element per message: redis-py's parser costs microseconds per element.)
TAKE: Final = (
    ACK_FN
    + b"""
local key, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local n = tonumber(ARGV[3])
local acked = ack_mine(key, group, consumer, ARGV[6])
local ids, lens, data = {}, {}, {}
local function collect(entries)
  for _, e in ipairs(entries) do
    local f = e[2]
    local v = ''
    for j = 1, #f, 2 do
      if f[j] == 'd' then v = f[j + 1] end
    end
    ids[#ids + 1] = e[1]
    lens[#lens + 1] = #v
    data[#data + 1] = v
  end
end
local claimed = redis.call('XAUTOCLAIM', key, group, consumer, ARGV[4], '0-0', 'COUNT', n)
collect(claimed[2])
if #ids < n then
  local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', n - #ids,
                       'STREAMS', key, '>')
  if r then collect(r[1][2]) end
end
if #ids == 0 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local name, last = nil, nil
    for j = 1, #g, 2 do
      if g[j] == 'name' then name = g[j + 1] end
      if g[j] == 'last-delivered-id' then last = g[j + 1] end
    end
    if name == group then return {last, acked} end
  end
  return {'0-0', acked}
end
if ARGV[5] == '1' then
  for i = 1, #ids, 1000 do
    local part = {unpack(ids, i, math.min(i + 999, #ids))}
    redis.call('XACK', key, group, unpack(part))
    redis.call('XDEL', key, unpack(part))
  end
end
return {'', acked, table.concat(ids, ','), table.concat(lens, ','), table.concat(data)}
"""
)

# KEYS[1] stream; ARGV: group, consumer, ids (see ACK_FN). Returns how many were acknowledged.
ACK: Final = (
    ACK_FN
    + b"""
return ack_mine(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
"""
)

# KEYS[1] stream; ARGV: group, consumer, idle ms. Forgets the consumer if nothing is pending to
# it, and so every other consumer with nothing pending that has been idle that long (handles of
# dead processes). Forgetting a consumer with nothing pending loses nothing: Redis makes it again
# when its handle next reads.
FORGET: Final = b"""
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return 0 end
local idle_ms = tonumber(ARGV[3])
local gone = 0
for _, c in ipairs(consumers) do
  local info = {}
  for j = 1, #c, 2 do info[c[j]] = c[j + 1] end
  if info['pending'] == 0 and (info['name'] == ARGV[2] or info['idle'] > idle_ms) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    gone = gone + 1
  end
end
return gone
"""
