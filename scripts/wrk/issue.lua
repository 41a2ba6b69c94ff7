-- updateAccessToken with the session cookie, a new name each time (scenario d).
package.path = package.path .. ";scripts/wrk/?.lua"
require "common"
local cookie = os.getenv("COOKIE")
local exp = os.time() + 3600
local n = 0

setup = function(thread)
  thread:set("tag", tostring(math.random(1, 1e9)))
end
request = function()
  n = n + 1
  local body = string.format(
    '{"query":"mutation { updateAccessToken(expirationTime: %d, name: \\"load-%s-%d\\", scopes: [\\"me:read\\"]) { success } }"}',
    exp, tag, n)
  return wrk.format("POST", "/api",
    { ["Content-Type"] = "application/json", ["Cookie"] = "tokengate_session=" .. cookie }, body)
end
