"""The Lua scripts of :mod:`fastqueue._redis._queue`, one per RedisQueue operation.

Redis runs a script atomically and logs its effects together (AOF, replicas), which is what makes
each operation one round trip *and* all-or-nothing: a put appends only what the bound allows, a
take acknowledges exactly what it replies with.

Every script gets the same keys (:data:`KEYS` names them, ``K`` being the stream):

1. ``K`` the stream; 2. ``K:fq:meta``, a hash of the stream's settings and counters:
   ``maxsize`` (set by the first handle, read by every later one), ``redeliver``, ``shutdown``
   (absent; ``1`` drain; ``2`` immediate), ``unfinished`` (puts minus ``task_done`` calls, what
   ``join`` waits for) and ``ticket`` (the waiting puts' numbering);
3. ``K:fq:line``, a sorted set: the puts waiting for room, by ticket (first come, first served);
   4. ``K:fq:seen``, a hash: when each waiting put last ran a script (ms; one silent for
   :data:`STALE_MS` died, and leaves the line); 5. ``K:fq:woken``, a hash: the waiting puts
   woken and not yet back; 6. ``K:fq:ctl``, a short stream of events (shutdown, join reached)
   that blocked gets and joins wait on beside the stream.

**Woken puts.** A put that does not fit joins the line in the same script that found the stream
full, then sleeps in ``BLPOP K:fq:line:ID`` (a list of its own). Every script that deletes
entries then pushes a token to the first ``free`` waiting puts of the line not woken yet
(``wake_puts``), so a freed place is taken by the put that waited longest, and a waiting put
sends one command per wake-up (and two per second of silence, to stay in the line). A put may
use a free place only if no waiting put is ahead of it for that place (``ahead``): newcomers do
not overtake the line. A token left with nobody waiting lets nothing through: every put re-checks
the bound in its script.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACK",
    "DELETE",
    "FORGET",
    "INIT",
    "JOIN",
    "KEYS",
    "PUT",
    "SHUTDOWN",
    "STALE_MS",
    "TAKE",
    "TASK_DONE",
]

#: The suffixes of the keys every script gets after the stream's (see the module's docstring).
KEYS: Final = (b":fq:meta", b":fq:line", b":fq:seen", b":fq:woken", b":fq:ctl")
#: A waiting put that ran no script for this long is presumed dead and leaves the line.
STALE_MS: Final = 5000

# The functions every script may use.
_LIB: Final = b"""
local key, meta, line, seen, woken, ctl = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function maxsize_of(default)
  local m = redis.call('HGET', meta, 'maxsize')
  if not m then
    redis.call('HSET', meta, 'maxsize', default)
    return tonumber(default)
  end
  return tonumber(m)
end
local function event(what)
  redis.call('XADD', ctl, 'MAXLEN', '~', 64, '*', 'e', what)
end
local function ctl_last()
  local last = redis.call('XREVRANGE', ctl, '+', '-', 'COUNT', 1)
  if #last == 0 then return '0-0' end
  return last[1][1]
end
-- Pushes a token to each of the first `free` waiting puts not woken yet.
local function wake_puts()
  if redis.call('EXISTS', line) == 0 then return end
  local m = tonumber(redis.call('HGET', meta, 'maxsize') or '0')
  local free = m - redis.call('XLEN', key)
  if m == 0 then free = redis.call('ZCARD', line) end
  if free <= 0 then return end
  for _, id in ipairs(redis.call('ZRANGE', line, 0, free - 1)) do
    if redis.call('HSETNX', woken, id, 1) == 1 then
      local w = line .. ':' .. id
      redis.call('RPUSH', w, 1)
      redis.call('PEXPIRE', w, 60000)
    end
  end
end
local function leave_line(id)
  redis.call('ZREM', line, id)
  redis.call('HDEL', seen, id)
  redis.call('HDEL', woken, id)
  redis.call('DEL', line .. ':' .. id)
end
local function id_parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function last_delivered(group)
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local name, last = nil, nil
    for j = 1, #g, 2 do
      if g[j] == 'name' then name = g[j + 1] end
      if g[j] == 'last-delivered-id' then last = g[j + 1] end
    end
    if name == group then return last end
  end
  return nil
end
-- Acknowledges `ids` and removes them from the stream: every entry older than the oldest one
-- still pending (none pending: older than the newest of ids, all delivered and acknowledged)
-- goes by one XTRIM MINID, which drops whole nodes (XDEL costs a scan of a node per id); the
-- ids acknowledged out of order (newer than an entry still pending) go one by one with XDEL.
-- So every acknowledger removes all of its own ids, and nothing still needed is removed.
local function delete_ids(group, ids)
  if #ids == 0 then return end
  for i = 1, #ids, 1000 do
    redis.call('XACK', key, group, unpack(ids, i, math.min(i + 999, #ids)))
  end
  local ms, seq = {}, {}
  for i, id in ipairs(ids) do ms[i], seq[i] = id_parts(id) end
  local floor, fm, fs
  local p = redis.call('XPENDING', key, group)
  if p[1] > 0 then
    floor = p[2]
    fm, fs = id_parts(floor)
  else  -- just past the newest of ids: every entry up to it was delivered and acknowledged
    local top = 1
    for i = 2, #ids do
      if ms[i] > ms[top] or (ms[i] == ms[top] and seq[i] > seq[top]) then top = i end
    end
    fm, fs = ms[top], seq[top] + 1
    floor = string.match(ids[top], '^(%d+)-') .. '-' .. tostring(fs)
  end
  redis.call('XTRIM', key, 'MINID', floor)
  local rest = {}
  for i, id in ipairs(ids) do
    if ms[i] > fm or (ms[i] == fm and seq[i] >= fs) then rest[#rest + 1] = id end
  end
  for i = 1, #rest, 1000 do
    redis.call('XDEL', key, unpack(rest, i, math.min(i + 999, #rest)))
  end
  wake_puts()
end
-- Acknowledges (and deletes) each of the ids in `csv` (ascending, comma-separated) still
-- pending to `consumer`; returns how many. An id missing from the count was claimed by another
-- consumer meanwhile (this one held it longer than that one's claim_after).
local function ack_mine(group, consumer, csv)
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
  delete_ids(group, ids)
  return #ids
end
-- One task done: unfinished - 1 (an event when it reaches 0); false if it was 0 already.
local function one_done()
  local u = redis.call('HINCRBY', meta, 'unfinished', -1)
  if u < 0 then
    redis.call('HSET', meta, 'unfinished', 0)
    return redis.call('HGET', meta, 'shutdown') == '2'
  end
  if u == 0 then event('joined') end
  return true
end
"""

# ARGV: maxsize ('' : take the stream's, 0 if new), redeliver ('', '0', '1'), create ('1' make
# the stream if missing, '0' refuse), group. Returns {'missing'} (create '0' and no stream) or
# {maxsize, redeliver, shutdown ('' none)}: the stream's settings, made by the first handle.
INIT: Final = (
    _LIB
    + b"""
if redis.call('HGET', meta, 'deleted') then redis.call('DEL', meta, ctl) end
if ARGV[3] == '0' and redis.call('EXISTS', key) == 0 then return {'missing'} end
local ok, err = pcall(redis.call, 'XGROUP', 'CREATE', key, ARGV[4], '0', 'MKSTREAM')
if not ok and not string.find(tostring(err), 'BUSYGROUP') then return redis.error_reply(err) end
if ARGV[1] ~= '' then redis.call('HSETNX', meta, 'maxsize', ARGV[1]) end
redis.call('HSETNX', meta, 'maxsize', 0)
if ARGV[2] ~= '' then redis.call('HSETNX', meta, 'redeliver', ARGV[2]) end
redis.call('HSETNX', meta, 'redeliver', 0)
local s = redis.call('HMGET', meta, 'maxsize', 'redeliver', 'shutdown')
return {s[1], s[2], s[3] or ''}
"""
)

# ARGV: maxsize (the handle's, if the stream lost its settings), waiter id ('' : a put that
# will not wait), stay ('1' : join or keep the line if not all fit; '0' : leave it), the
# messages' lengths (comma-separated decimals) and the messages back to back (two arguments
# instead of one per message: redis-py packs each argument in Python). Returns how many of the
# first messages were appended, or -1 if shut down.
PUT: Final = (
    _LIB
    + b"""
local lens = {}
for len in string.gmatch(ARGV[4], '%d+') do lens[#lens + 1] = tonumber(len) end
local n = #lens
local settings = redis.call('HMGET', meta, 'maxsize', 'shutdown')
local maxsize = tonumber(settings[1])
if not maxsize then maxsize = maxsize_of(ARGV[1]) end
local me = ARGV[2]
if settings[2] then
  if me ~= '' then leave_line(me); wake_puts() end
  return -1
end
local room = n
if maxsize > 0 then
  local ahead = 0
  if redis.call('EXISTS', line) == 1 then
    local t = now_ms()
    local stamps = redis.call('HGETALL', seen)
    for j = 1, #stamps, 2 do
      if stamps[j] ~= me and t - tonumber(stamps[j + 1]) > @STALE_MS@ then leave_line(stamps[j]) end
    end
    if me ~= '' then redis.call('HDEL', woken, me) end
    local rank = nil
    if me ~= '' then rank = redis.call('ZRANK', line, me) end
    if rank then ahead = rank else ahead = redis.call('ZCARD', line) end
  end
  room = maxsize - redis.call('XLEN', key) - ahead
  if room > n then room = n end
  if room < 0 then room = 0 end
end
local data, pos = ARGV[5], 1
for i = 1, room do
  redis.call('XADD', key, '*', 'd', string.sub(data, pos, pos + lens[i] - 1))
  pos = pos + lens[i]
end
if room > 0 then redis.call('HINCRBY', meta, 'unfinished', room) end
if me ~= '' then
  if room == n or ARGV[3] == '0' then
    if redis.call('ZSCORE', line, me) then
      leave_line(me)
      wake_puts()
    end
  else
    if not redis.call('ZSCORE', line, me) then
      redis.call('ZADD', line, redis.call('HINCRBY', meta, 'ticket', 1), me)
    end
    redis.call('HSET', seen, me, now_ms())
  end
end
return room
""".replace(b"@STALE_MS@", b"%d" % STALE_MS)
)

# ARGV: group, consumer, n, min idle ms for claims, ack (1) or not (0), and ids taken
# unacknowledged earlier to acknowledge first (see ack_mine; "" for none). Returns {'S', acked}
# when shut down (immediately, or with nothing left); {cursor, acked, ctl} when there is
# nothing to take (cursor: the group's last-delivered id and ctl the control stream's last id,
# from which XREAD BLOCK waits for a new entry or event); else {"", acked, ids, lengths, data}:
# the ids and the messages' lengths as comma-separated decimals and the messages back to back.
# (Three strings instead of a reply element per message: redis-py's parser costs microseconds
# per element.)
TAKE: Final = (
    _LIB
    + b"""
local group, consumer = ARGV[1], ARGV[2]
local n = tonumber(ARGV[3])
local acked = ack_mine(group, consumer, ARGV[6])
local shut = redis.call('HGET', meta, 'shutdown')
if shut == '2' then return {'S', acked} end
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
  if shut then return {'S', acked} end
  return {last_delivered(group) or '0-0', acked, ctl_last()}
end
if ARGV[5] == '1' then delete_ids(group, ids) end
return {'', acked, table.concat(ids, ','), table.concat(lens, ','), table.concat(data)}
"""
)

# ARGV: group, consumer, ids (see ack_mine). Returns how many were acknowledged.
ACK: Final = (
    _LIB
    + b"""
return ack_mine(ARGV[1], ARGV[2], ARGV[3])
"""
)

# ARGV: group, consumer, the id of the lease to acknowledge ('' : none, a plain task_done).
# Returns 1 (done), 0 (task_done called more times than messages put) or -1 (the lease was
# claimed by another consumer meanwhile: that one's task_done counts it).
TASK_DONE: Final = (
    _LIB
    + b"""
if ARGV[3] ~= '' and ack_mine(ARGV[1], ARGV[2], ARGV[3]) == 0 then return -1 end
if one_done() then return 1 end
return 0
"""
)

# No ARGV. Returns {unfinished, the control stream's last id}.
JOIN: Final = (
    _LIB
    + b"""
return {tonumber(redis.call('HGET', meta, 'unfinished') or '0'), ctl_last()}
"""
)

# No ARGV. Deletes the stream and what goes with it, leaving for a minute a tombstone: the
# settings say "shut down at once", so handles still open get ShutDown (their blocked calls are
# woken) instead of making the stream again; the next handle made with create=True starts anew.
DELETE: Final = (
    _LIB
    + b"""
for _, id in ipairs(redis.call('ZRANGE', line, 0, -1)) do
  local w = line .. ':' .. id
  redis.call('RPUSH', w, 1)
  redis.call('PEXPIRE', w, 60000)
end
redis.call('DEL', key, meta, line, seen, woken)
redis.call('HSET', meta, 'shutdown', 2, 'deleted', 1, 'maxsize', 0)
redis.call('PEXPIRE', meta, 60000)
event('shutdown')
redis.call('PEXPIRE', ctl, 60000)
return 1
"""
)

# ARGV: '1' immediate, '0' not. Marks the stream shut down (immediate stays immediate); an
# immediate one deletes every entry and forgets the unfinished tasks. Wakes every waiting put
# and, by an event, every blocked get and join.
SHUTDOWN: Final = (
    _LIB
    + b"""
if ARGV[1] == '1' then
  redis.call('HSET', meta, 'shutdown', 2)
  redis.call('XTRIM', key, 'MAXLEN', 0)
  redis.call('HSET', meta, 'unfinished', 0)
elseif redis.call('HGET', meta, 'shutdown') ~= '2' then
  redis.call('HSET', meta, 'shutdown', 1)
end
for _, id in ipairs(redis.call('ZRANGE', line, 0, -1)) do
  local w = line .. ':' .. id
  redis.call('RPUSH', w, 1)
  redis.call('PEXPIRE', w, 60000)
end
event('shutdown')
return 1
"""
)

# ARGV: group, consumer, idle ms, ids of this consumer's leases to give back ('' : none).
# Takes this consumer's puts out of the line (a close while they wait), gives the leases back
# (idle for ever: the next get of any consumer claims them), then forgets the consumer if
# nothing is pending to it, and so every other consumer with nothing pending
# that has been idle that long (handles of dead processes). Forgetting a consumer with nothing
# pending loses nothing: Redis makes it again when its handle next reads.
FORGET: Final = (
    _LIB
    + b"""
local mine = ARGV[2] .. ':'
for _, id in ipairs(redis.call('ZRANGE', line, 0, -1)) do
  if string.sub(id, 1, #mine) == mine then leave_line(id) end
end
wake_puts()
local back = {}
for id in string.gmatch(ARGV[4], '[^,]+') do back[#back + 1] = id end
for i = 1, #back, 1000 do
  local args = {'XCLAIM', key, ARGV[1], ARGV[2], 0, unpack(back, i, math.min(i + 999, #back))}
  args[#args + 1] = 'IDLE'
  args[#args + 1] = now_ms() - 1000
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
end
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', key, ARGV[1])
if not ok then return 0 end
local idle_ms = tonumber(ARGV[3])
local gone = 0
for _, c in ipairs(consumers) do
  local info = {}
  for j = 1, #c, 2 do info[c[j]] = c[j + 1] end
  if info['pending'] == 0 and (info['name'] == ARGV[2] or info['idle'] > idle_ms) then
    redis.call('XGROUP', 'DELCONSUMER', key, ARGV[1], info['name'])
    gone = gone + 1
  end
end
return gone
"""
)
