-- wrk script for every contender: POSTs an OpenAI chat body (or a /gateway/jobs body) and prints one JSON line
-- with the latency percentiles at the end. Configured through the environment:
--   BENCH_PATH     request path (default /v1/chat/completions)
--   BENCH_BODY     "chat" (OpenAI chat completions body) or "job" (POST /gateway/jobs body)
--   BENCH_MODEL    model name in the body
--   BENCH_AUTH     value of the Authorization header, empty for none
--   BENCH_PROMPT   prompt text; unique per request (cache miss) unless BENCH_UNIQUE=0
--   BENCH_UNIQUE   "1" (default): append a per-run, per-thread, per-request suffix to the prompt
--   BENCH_TAG      part of that suffix that differs between runs, so no two runs share a prompt
--   BENCH_LIMIT    stop each thread after this many responses (0: run for the duration)
--   BENCH_IDS_OUT  with BENCH_BODY=job, write the accepted job ids to this file, one a line
--   BENCH_DONE_MARKER  with BENCH_LIMIT, each thread creates <marker>.<thread> when it reached the limit
local path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
local kind = os.getenv("BENCH_BODY") or "chat"
local model = os.getenv("BENCH_MODEL") or "gpt-4o-mini"
local auth = os.getenv("BENCH_AUTH") or ""
local prompt = os.getenv("BENCH_PROMPT") or "Hello from the benchmark"
local unique = (os.getenv("BENCH_UNIQUE") or "1") == "1"
local tag = os.getenv("BENCH_TAG") or tostring(os.time())
local limit = tonumber(os.getenv("BENCH_LIMIT") or "0")
local ids_out = os.getenv("BENCH_IDS_OUT")

local threads = {}
local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_id", next_thread)
  table.insert(threads, thread)
end

local headers = { ["Content-Type"] = "application/json" }
if auth ~= "" then headers["Authorization"] = auth end

local counter = 0
local responses = 0
ids = {}

local function body_for(text)
  if kind == "job" then
    return '{"model":"' .. model .. '","messages":[{"role":"user","content":"' .. text .. '"}]}'
  end
  return '{"model":"' .. model .. '","messages":[{"role":"user","content":"' .. text .. '"}],"max_tokens":16}'
end

-- Built on first use: wrk sets the Host header only after the script loaded.
local fixed = nil

function request()
  if not unique then
    fixed = fixed or wrk.format("POST", path, headers, body_for(prompt))
    return fixed
  end
  counter = counter + 1
  local text = prompt .. " " .. tag .. "-" .. thread_id .. "-" .. counter
  return wrk.format("POST", path, headers, body_for(text))
end

if limit > 0 or ids_out then
  function response(status, hdrs, body)
    responses = responses + 1
    if ids_out and status == 202 then
      local id = string.match(body, '"id"%s*:%s*"([^"]+)"')
      if id then table.insert(ids, id) end
    end
    if limit > 0 and responses == limit then
      -- wrk keeps the run going for its whole duration; the harness watches these files and interrupts it.
      local marker = os.getenv("BENCH_DONE_MARKER")
      if marker then
        local file = io.open(marker .. "." .. thread_id, "w")
        file:close()
      end
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  if ids_out then
    local file = io.open(ids_out, "w")
    for _, thread in ipairs(threads) do
      local list = thread:get("ids")
      if list then
        for _, id in ipairs(list) do file:write(id, "\n") end
      end
    end
    file:close()
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max))
end
