-- updateAccessToken with the session cookie (scenario d): each thread cycles
-- through $NAMES names (default 32) of its own, so every issue after the first
-- round rotates the earlier token of its name away (rotation by name, often
-- racing another connection issuing under the same name), and the account's
-- active tokens stay bounded.
package.path = package.path .. ";scripts/wrk/?.lua"
require "common"
local cookie = os.getenv("COOKIE")
local names = tonumber(os.getenv("NAMES") or "32")
local exp = os.time() + 3600
local n = 0

setup = function(thread)
  thread:set("tag", tostring(math.random(1, 1e9)))
end
request = function()
  n = n + 1
  local body = string.format(
    '{"query":"mutation { updateAccessToken(expirationTime: %d, name: \\"load-%s-%d\\", scopes: [\\"me:read\\"]) { success } }"}',
    exp, tag, n % names)
  return wrk.format("POST", "/api",
    { ["Content-Type"] = "application/json", ["Cookie"] = "tokengate_session=" .. cookie }, body)
end
