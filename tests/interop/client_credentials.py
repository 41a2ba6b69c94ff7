"""Interoperability check: a third-party OAuth 2.0 client (requests-oauthlib)
obtains a token with the client-credentials grant and calls tokengate's API.

Usage: client_credentials.py BASE_URL CLIENT_ID CLIENT_SECRET
Prints {"token_type": ..., "me": {...}} on success.
"""
import json
import os
import sys

# The test server listens on plain HTTP on loopback; production runs behind TLS.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"

from oauthlib.oauth2 import BackendApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

base, client_id, client_secret = sys.argv[1:4]
metadata = OAuth2Session().get(f"{base}/.well-known/oauth-authorization-server").json()
session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
token = session.fetch_token(
    token_url=metadata["token_endpoint"],
    auth=HTTPBasicAuth(client_id, client_secret),
)
resp = session.post(f"{base}/api", json={"query": "{ me { id role } }"})
resp.raise_for_status()
body = resp.json()
if "errors" in body:
    sys.exit(f"GraphQL errors: {body['errors']}")
print(json.dumps({"token_type": token["token_type"], "me": body["data"]["me"]}))
