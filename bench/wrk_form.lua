-- wrk's script for bench/ingest.py: every request a new web-form submission.
--
--   wrk -t1 -c16 -d10s --latency -s bench/wrk_form.lua URL -- TOKEN CLIENTS EXPECTED
--
-- TOKEN makes the submission ids of this run unique (with the thread's number, across wrk's
-- threads too); CLIENTS shapes the email pool as bench/ingest.py's own clients would (each of
-- CLIENTS clients has 50 customers, so repeat customers happen); EXPECTED is the status a
-- stored submission is answered with (303). wrk counts only statuses above 399 as errors, so
-- the script counts every other answer than EXPECTED itself: a 200 where a redirect belongs is
-- a wrong answer too. At the end it prints one line, `WRK_RESULT {json}`, for the driver.
--
-- wrk runs each thread's script in a Lua state of its own: `setup` (main state) numbers the
-- threads and keeps them, `init` reads the arguments in each thread, `done` (main state again)
-- sums the threads' counters with thread:get.

local threads = {}

-- A message as long as the Python clients' ("Where is my order? " five times), urlencoded.
local MESSAGE = string.rep("Where+is+my+order%3F+", 5)
local HEADERS = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function setup(thread)
   table.insert(threads, thread)
   thread:set("number", #threads)
end

function init(args)
   token = args[1] or "wrk"
   clients = tonumber(args[2]) or 16
   expected = tonumber(args[3]) or 303
   sent = 0
   unexpected = 0
   prefix = token .. "-" .. number .. "-"
end

function request()
   sent = sent + 1
   local client = sent % clients
   local customer = math.floor(sent / clients) % 50
   local body = "name=Bench+Client+" .. client
      .. "&email=bench" .. client .. "-" .. customer .. "%40example.com"
      .. "&message=" .. MESSAGE
      .. "&submission_id=" .. prefix .. sent
   return wrk.format("POST", nil, HEADERS, body)
end

function response(status, headers, body)
   if status ~= expected then
      unexpected = unexpected + 1
   end
end

function done(summary, latency, requests)
   local wrong = 0
   for _, thread in ipairs(threads) do
      wrong = wrong + (thread:get("unexpected") or 0)
   end
   local errors = summary.errors
   io.write(string.format(
      'WRK_RESULT {"requests": %.0f, "duration_us": %.0f, "connect": %.0f, "read": %.0f, '
         .. '"write": %.0f, "timeout": %.0f, "status": %.0f, "unexpected": %.0f, '
         .. '"p50_us": %.0f, "p90_us": %.0f, "p99_us": %.0f, "max_us": %.0f}\n',
      summary.requests, summary.duration, errors.connect, errors.read, errors.write,
      errors.timeout, errors.status, wrong, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max
   ))
end
