-- greylist.lua - the greylisting decision as one atomic step in Redis.
--
-- Mirrors decide() (src/lib/decide.h) rule for rule, over the engine's
-- record transitions (src/lib/engine.c); tests/decide_scenarios.txt is
-- run through this script by tests/integration/test_redis.py.  Embedded
-- in greyhold at build time (redis_script.c is generated from this file).
--
-- Time is the Redis server's (TIME), so every MX sharing this Redis
-- decides on one clock however theirs are set.  Calling TIME before a
-- write needs script effects replication: the default since Redis 5.0,
-- the only mode since 7.0.
--
-- One request has N identities (today N = 1: the client network):
--   KEYS[2i-1]  identity i's auto-whitelist (client) record
--   KEYS[2i]    identity i's triplet record
--   ARGV[1..6]  delay, retry_window, max_age, awl_passes, refresh
--               (ENGINE_REFRESH), grace (TTL past the point of no use)
--   ARGV[6+i]   '1' when identity i may auto-whitelist, else '0'
-- Records are strings "1 FIRST LAST PASSES" (version 1, decimal unix
-- seconds; redis_codec.h).  A value that does not decode is deleted and
-- reads as absent, like a corrupt LMDB record.
-- Returns {action (0 pass, 1 defer), reason, seconds_left, delay, wrote
-- (0/1), corrupt (count), matched (0-based identity that decided a pass)}.

local delay = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local max_age = tonumber(ARGV[3])
local awl = tonumber(ARGV[4])
local refresh = tonumber(ARGV[5])
local grace = tonumber(ARGV[6])
local n = #KEYS / 2
local now = tonumber(redis.call('TIME')[1])
local UINT32_MAX = 4294967295
local wrote, corrupt = 0, 0

local function load(key)
  local v = redis.pcall('GET', key)
  if v == false then return nil end
  if type(v) == 'string' then
    local f, l, p = string.match(v, '^1 (%d+) (%d+) (%d+)$')
    if f then return {tonumber(f), tonumber(l), tonumber(p)} end
  end
  redis.call('DEL', key)
  corrupt = corrupt + 1
  return nil
end

-- Pending triplets are of no use after the retry window, the others
-- (passed triplets, clients) after max_age; grace keeps them a little
-- longer so a late retry is logged as a restart, as with LMDB.
local function save(key, r)
  local ttl = max_age
  if r[3] == 0 then ttl = window end
  redis.call('SET', key, string.format('1 %d %d %d', r[1], r[2], r[3]),
             'EX', ttl + grace)
  wrote = 1
end

local function plus_one(p)
  if p < UINT32_MAX then return p + 1 end
  return p
end

-- A refresh is due after `refresh` s, or if the clock went back.
local function refresh_due(last)
  return now < last or now - last >= refresh
end

-- engine_triplet(): the verdict, and the record to write (nil: none).
local function engine_triplet(r)
  if not r then return {1, 'new', delay, 0}, {now, now, 0} end
  if r[3] > 0 then
    if now - r[2] > max_age then
      return {1, 'restart', delay, 0}, {now, now, 0}
    end
    if not refresh_due(r[2]) then return {0, 'known', 0, 0}, nil end
    return {0, 'known', 0, 0}, {r[1], now, plus_one(r[3])}
  end
  local elapsed = now - r[1]
  if elapsed < 0 or elapsed > window then
    return {1, 'restart', delay, 0}, {now, now, 0}
  end
  if elapsed < delay then return {1, 'early', delay - elapsed, 0}, nil end
  return {0, 'passed', 0, elapsed}, {r[1], now, 1}
end

-- engine_client_listed() and engine_client_count().
local function client_listed(c)
  return awl > 0 and c ~= nil and c[3] >= awl and now - c[2] <= max_age
end

local function client_count(c)
  if not c then return {now, now, 1} end
  if not refresh_due(c[2]) then return nil end
  return {c[1], now, plus_one(c[3])}
end

local function reply(v, matched)
  return {v[1], v[2], v[3], v[4], wrote, corrupt, matched}
end

-- No identity: nothing to key on; deferred as new, nothing written.
if n < 1 then return reply({1, 'new', delay, 0}, 0) end

local use_awl, client = {}, {}
for i = 1, n do
  use_awl[i] = ARGV[6 + i] == '1'
  if use_awl[i] then client[i] = load(KEYS[2 * i - 1]) end
end

-- Rule 1: the first awl identity whose client is listed passes.
for i = 1, n do
  if use_awl[i] and client_listed(client[i]) then
    local c = client_count(client[i])
    if c then save(KEYS[2 * i - 1], c) end
    return reply({0, 'awl', 0, 0}, i - 1)
  end
end

-- Rule 2: each identity's triplet through the engine; if any passes,
-- those that would have deferred are recorded as passed too.
local v, out, put, matched = {}, {}, {}, nil
for i = 1, n do
  local r = load(KEYS[2 * i])
  v[i], out[i] = engine_triplet(r)
  put[i] = out[i] ~= nil
  if not put[i] then out[i] = r end
  if v[i][1] == 0 and not matched then matched = i end
end
if matched then
  for i = 1, n do
    if v[i][1] ~= 0 then
      out[i] = {out[i][1], now, 1}
      put[i] = true
    end
  end
end
for i = 1, n do
  if put[i] then save(KEYS[2 * i], out[i]) end
end
if matched then
  for i = 1, n do
    if use_awl[i] then
      local c = client_count(client[i])
      if c then save(KEYS[2 * i - 1], c) end
    end
  end
  return reply(v[matched], matched - 1)
end

-- Rule 3: every identity deferred: "early" with the fewest seconds left
-- if any is early, else "new" ("restart" when every one restarted).
local best, all_restart = nil, true
for i = 1, n do
  if v[i][2] == 'early' and (not best or v[i][3] < best[3]) then
    best = v[i]
  end
  if v[i][2] ~= 'restart' then all_restart = false end
end
if not best then
  best = {1, 'new', delay, 0}
  if all_restart then best[2] = 'restart' end
end
return reply(best, 0)
