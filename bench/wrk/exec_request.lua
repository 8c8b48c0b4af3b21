-- One request per call of request(): WRK_METHOD (GET or POST) with the JSON body WRK_BODY, in which
-- every "@ID@" becomes a key unique to this run, thread and request (WRK_PREFIX-<thread>-<n>), so
-- POSTs can carry fresh client_order_ids / strategy ids. X-API-Key from WRK_API_KEY when set.
-- At the end one JSON line that bench/exec_bench.py parses (latencies in microseconds).
local counter = 0
local threads = {}

setup = function(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local method = os.getenv("WRK_METHOD") or "POST"
local template = os.getenv("WRK_BODY") or ""
local prefix = os.getenv("WRK_PREFIX") or "bench"
local headers = { ["Content-Type"] = "application/json" }
local key = os.getenv("WRK_API_KEY")
if key and key ~= "" then
  headers["X-API-Key"] = key
end

request = function()
  if method == "GET" then
    return wrk.format("GET", nil, headers, nil)
  end
  counter = counter + 1
  local id = string.format("%s-%s-%d", prefix, tostring(tid or 0), counter)
  local body = string.gsub(template, "@ID@", id)
  return wrk.format("POST", nil, headers, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"p50":%d,"p95":%d,"p99":%d,"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d}\n',
    latency:percentile(50), latency:percentile(95), latency:percentile(99), summary.requests,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
