-- POST a JSON body (WRK_BODY) with an optional X-API-Key (WRK_API_KEY); at the end print one
-- JSON line that bench/serve_bench.py parses (latencies in microseconds).
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or '{"target":"BTC"}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("WRK_API_KEY")
if key and key ~= "" then
  wrk.headers["X-API-Key"] = key
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"p50":%d,"p95":%d,"p99":%d,"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d}\n',
    latency:percentile(50), latency:percentile(95), latency:percentile(99), summary.requests,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
