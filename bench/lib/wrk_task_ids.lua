-- wrk script of bench/suite/20-http-tasks.sh: GET /api/v1/tasks/{id}, rotating
-- over the task ids of a file (one a line), so the load is not one cached row.
--   wrk -t2 -c64 -d10s --latency -s bench/lib/wrk_task_ids.lua http://127.0.0.1:PORT -- IDS_FILE
-- Each wrk thread starts at its own offset into the list and walks it in
-- order (the file is shuffled); the requests are formatted once, in init.

local counter = 0

function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
end

local reqs = {}
local i = 0

function init(args)
  local f = assert(io.open(args[1], "r"), "cannot open the ids file")
  for id in f:lines() do
    if id ~= "" then
      reqs[#reqs + 1] = wrk.format("GET", "/api/v1/tasks/" .. id)
    end
  end
  f:close()
  assert(#reqs > 0, "no ids in " .. args[1])
  i = ((offset or 0) * 7919) % #reqs
end

function request()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
