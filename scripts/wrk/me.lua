-- POST { me { $FIELDS } }, with the cookie in $COOKIE when set (scenarios a and c).
package.path = package.path .. ";scripts/wrk/?.lua"
require "common"
wrk.method = "POST"
wrk.body = me_body
wrk.headers["Content-Type"] = "application/json"
local cookie = os.getenv("COOKIE")
if cookie and #cookie > 0 then
  wrk.headers["Cookie"] = "tokengate_session=" .. cookie
end
