-- POST { me { $FIELDS } } with Bearer tokens taken in turn from $TOKENS (scenario b).
package.path = package.path .. ";scripts/wrk/?.lua"
require "common"
local tokens = read_lines(os.getenv("TOKENS"))
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("POST", "/api",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. tokens[i] }, me_body)
end
