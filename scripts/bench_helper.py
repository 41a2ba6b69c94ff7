"""Helpers for scripts/bench.sh (standard library + requests only).

  bench_helper.py signin BASE EMAIL PASSWORD          -> prints the session cookie value
  bench_helper.py issue BASE COOKIE N OUT [PREFIX]    -> writes N lines "id token" to OUT
                                                        (names PREFIX-i: distinct prefixes, or
                                                        issuing rotates the earlier tokens away)
  bench_helper.py propagation A B COOKIE N            -> revokes on A, times until B refuses
"""
import json
import statistics
import sys
import time

import requests

ME = {"query": "{ me { id } }"}


def gql(session, base, query, variables=None, cookie=None, token=None):
    headers = {"content-type": "application/json"}
    if cookie:
        headers["cookie"] = f"tokengate_session={cookie}"
    if token:
        headers["authorization"] = f"Bearer {token}"
    return session.post(f"{base}/api", data=json.dumps({"query": query, "variables": variables or {}}), headers=headers)


def issue_one(session, base, cookie, name):
    q = "mutation($exp: Int, $name: String) { updateAccessToken(expirationTime: $exp, name: $name, scopes: [\"me:read\"]) { sessionJwt accessToken { id } } }"
    r = gql(session, base, q, {"exp": int(time.time()) + 7200, "name": name}, cookie=cookie).json()
    p = r["data"]["updateAccessToken"]
    return p["accessToken"]["id"], p["sessionJwt"]


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    s = requests.Session()
    if cmd == "signin":
        base, email, password = args
        r = s.post(f"{base}/auth/login", json={"email": email, "password": password})
        r.raise_for_status()
        print(r.cookies["tokengate_session"])
    elif cmd == "issue":
        base, cookie, n, out = args[:4]
        prefix = args[4] if len(args) > 4 else "bench"
        with open(out, "w") as f:
            for i in range(int(n)):
                tid, tok = issue_one(s, base, cookie, f"{prefix}-{i}")
                f.write(f"{tid} {tok}\n")
    elif cmd == "propagation":
        a, b, cookie, n = args
        delays = []
        for i in range(int(n)):
            tid, tok = issue_one(s, a, cookie, f"prop-{i}")
            for _ in range(2):  # warm b's cache
                assert gql(s, b, ME["query"], token=tok).status_code == 200
            revoke = gql(s, a, "mutation($id: ID!) { revokeAccessToken(id: $id) { status } }", {"id": tid}, cookie=cookie)
            t0 = time.monotonic()
            assert revoke.json()["data"]["revokeAccessToken"]["status"] == "REVOKED"
            while gql(s, b, ME["query"], token=tok).status_code == 200:
                if time.monotonic() - t0 > 5:
                    sys.exit(f"revocation {i} not seen by {b} after 5 s")
            delays.append((time.monotonic() - t0) * 1000)
        print(f"RESULT median_ms={statistics.median(delays):.1f} max_ms={max(delays):.1f} n={len(delays)}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
