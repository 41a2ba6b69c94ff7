-- POST { orders { id item } } with `Authorization: Bearer $TOKEN`: through the
-- gateway (a tokengate token) or to the upstream directly (an assertion).
package.path = package.path .. ";scripts/wrk/?.lua"
require "common"
wrk.method = "POST"
wrk.body = '{"query":"{ orders { id item } }"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
