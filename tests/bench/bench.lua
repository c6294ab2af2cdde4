-- wrk script for the benchmark: realistic requests, and a machine-readable summary at the end.
-- Configured through the environment (every variable optional):
--   BENCH_TOKENS  comma-separated JWTs; each request sends one of them (Authorization: Token ...)
--   BENCH_SLUGS   a file with one article slug per line; "_slug_" in the path becomes a random one
--   BENCH_MODE    "get" (the URL's path), "create" (POST /api/articles), "favorite" (POST and
--                 DELETE /api/articles/{slug}/favorite, alternately)
--   BENCH_TAGS    comma-separated tag names for created articles
--   BENCH_RUN     distinguishes the titles created by different runs
-- A request() function is defined only when a request must vary, since wrk sends a fixed
-- request faster without one.

local function split(text)
  local items = {}
  for item in string.gmatch(text or "", "[^,]+") do items[#items + 1] = item end
  return items
end

local mode = os.getenv("BENCH_MODE") or "get"
local tokens = split(os.getenv("BENCH_TOKENS"))
local tags = split(os.getenv("BENCH_TAGS"))
local run = os.getenv("BENCH_RUN") or "0"
local slugs = {}
local slug_file = os.getenv("BENCH_SLUGS")
if slug_file then
  for line in io.lines(slug_file) do slugs[#slugs + 1] = line end
end

local counter = 0
local pending_unfavorite = nil
local prepared = nil

local function headers_for_request()
  local headers = {}
  if #tokens > 0 then headers["Authorization"] = "Token " .. tokens[math.random(#tokens)] end
  return headers
end

local function random_slug()
  return slugs[math.random(#slugs)]
end

local dynamic = mode ~= "get" or #slugs > 0 or #tokens > 1

if #tokens == 1 then wrk.headers["Authorization"] = "Token " .. tokens[1] end

function init(args)
  math.randomseed(os.time() + tonumber(run) % 100000)
end

-- GET requests that vary (a random slug, one of several tokens) are formatted once, at the first
-- request (wrk fills in the Host header only after loading this script): as many as there are
-- slugs, each with a slug drawn at random, then sent in turn. Formatting each request as it goes costs wrk several times the CPU
-- of a fixed request, CPU that the app and PostgreSQL share on this machine; the reference
-- points send fixed requests.
local function prepare_gets()
  prepared = {}
  for i = 1, math.max(#slugs, 1000) do
    local path = wrk.path
    if #slugs > 0 then path = string.gsub(path, "_slug_", random_slug()) end
    prepared[i] = wrk.format("GET", path, headers_for_request())
  end
end

if dynamic then
  function request()
    counter = counter + 1
    local headers = headers_for_request()
    if mode == "create" then
      headers["Content-Type"] = "application/json"
      local chosen, used = {}, {}
      for _ = 1, math.random(1, 3) do
        local tag = tags[math.random(#tags)]
        if not used[tag] then used[tag] = true; chosen[#chosen + 1] = '"' .. tag .. '"' end
      end
      local body = string.format(
        '{"article":{"title":"Measured pools %s %d","description":"What the pool buys, measured.",' ..
        '"body":"One connection per request, lent by the middleware and always given back.",' ..
        '"tagList":[%s]}}', run, counter, table.concat(chosen, ","))
      return wrk.format("POST", "/api/articles", headers, body)
    elseif mode == "favorite" then
      if pending_unfavorite then
        local slug = pending_unfavorite
        pending_unfavorite = nil
        return wrk.format("DELETE", "/api/articles/" .. slug .. "/favorite", headers)
      end
      pending_unfavorite = random_slug()
      return wrk.format("POST", "/api/articles/" .. pending_unfavorite .. "/favorite", headers)
    end
    if prepared == nil then prepare_gets() end
    counter = counter % #prepared + 1
    return prepared[counter]
  end
end



function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"non2xx":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
