-- wrk script: POST one JSON body per line of a file, each line once, with a bearer token.
--
--   BENCH_TOKEN=... wrk -t2 -c32 -d30s --latency -s bench/post_lines.lua URL -- bodies.txt 2
--
-- Arguments after "--": the file and wrk's thread count. Each thread takes every n-th line (its own slice), so
-- no two requests carry the same body; a thread that runs out starts its slice again and counts that as "reused"
-- (a check-in of a member already checked in is a 409, i.e. an error in the figures, not a silent repeat).
-- done() prints one machine-readable line, BENCH_RESULT {json}, which bench/load.py reads.

local threads = {}

function setup(thread)
    thread:set("id", #threads)
    table.insert(threads, thread)
end

function init(args)
    local path, nthreads = args[1], tonumber(args[2])
    bodies = {}
    local index = 0
    for line in io.lines(path) do
        if index % nthreads == id then
            bodies[#bodies + 1] = line
        end
        index = index + 1
    end
    if #bodies == 0 then
        error("no bodies for thread " .. id .. " in " .. path)
    end
    local token = os.getenv("BENCH_TOKEN") or ""
    headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }
    sent = 0
    reused = 0
end

function request()
    sent = sent + 1
    if sent > #bodies then
        reused = reused + 1
    end
    return wrk.format("POST", nil, headers, bodies[(sent - 1) % #bodies + 1])
end

function done(summary, latency, requests)
    local total_reused = 0
    for _, thread in ipairs(threads) do
        total_reused = total_reused + (thread:get("reused") or 0)
    end
    local errors = summary.errors
    io.write(string.format(
        'BENCH_RESULT {"requests": %d, "duration_us": %d, "status_errors": %d, "connect_errors": %d, '
            .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %.1f, "p99_us": %.1f, '
            .. '"max_us": %.1f, "reused": %d}\n',
        summary.requests, summary.duration, errors.status, errors.connect, errors.read, errors.write,
        errors.timeout, latency:percentile(50), latency:percentile(99), latency.max, total_reused
    ))
end
