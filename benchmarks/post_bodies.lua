-- wrk script: POST the request bodies named in BENCH_BODIES (files, comma-separated) in turn, to BENCH_PATH,
-- and print the latency percentiles (microseconds) and counts as one JSON line when done.
local bodies = {}
local next_body = 1

function init(args)
  for file in string.gmatch(os.getenv("BENCH_BODIES") or "", "[^,]+") do
    local f = assert(io.open(file, "rb"))
    local body = f:read("*a")
    f:close()
    bodies[#bodies + 1] = wrk.format("POST", os.getenv("BENCH_PATH"), {["Content-Type"] = "application/json"}, body)
  end
  next_body = 1
end

function request()
  local req = bodies[next_body]
  next_body = next_body % #bodies + 1
  return req
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
