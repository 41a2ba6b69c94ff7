-- Bearer { me { id } }, and every $REVOKE_EVERY-th request (default 100: 1%;
-- 0: never) a revokeAccessToken of one of those tokens (scenario e). Lines of
-- $TOKENS are "id token"; each thread takes its share.
package.path = package.path .. ";scripts/wrk/?.lua"
require "common"
local threads = 0
setup = function(thread)
  thread:set("part", threads)
  threads = threads + 1
end
local cookie = os.getenv("COOKIE")
local every = tonumber(os.getenv("REVOKE_EVERY") or "100")
local ids, tokens = {}, {}
local i, n = 0, 0
init = function(args)
  local all = read_lines(os.getenv("TOKENS"))
  local parts = tonumber(os.getenv("WRK_THREADS") or "2")
  for k, line in ipairs(all) do
    if (k - 1) % parts == part then
      local id, token = line:match("^(%S+) (%S+)$")
      ids[#ids + 1] = id
      tokens[#tokens + 1] = token
    end
  end
end
request = function()
  n = n + 1
  if every > 0 and n % every == 0 and #tokens > 1 then
    -- Revoke the last live token and stop using it.
    local id = table.remove(ids)
    table.remove(tokens)
    local body = string.format('{"query":"mutation { revokeAccessToken(id: \\"%s\\") { status } }"}', id)
    return wrk.format("POST", "/api",
      { ["Content-Type"] = "application/json", ["Cookie"] = "tokengate_session=" .. cookie }, body)
  end
  i = i % #tokens + 1
  return wrk.format("POST", "/api",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. tokens[i] }, me_body)
end
