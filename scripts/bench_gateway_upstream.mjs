// The gateway benchmark's upstream: examples/gateway/upstream.mjs, plus the
// latest verified assertion written to $ASSERTION_FILE every 200 ms, so the
// "direct" rounds call the upstream with a JWT it verifies exactly as it
// verifies the gateway's (same keys, audience, issuer; 60 s lifetime).
import { writeFileSync } from 'node:fs';

import { startUpstream } from '../examples/gateway/upstream.mjs';

const up = await startUpstream({ tokengate: process.env.TOKENGATE, port: Number(process.env.PORT) });
console.log(`upstream on ${up.url}`);
setInterval(() => {
  const last = up.requests.findLast((r) => r.verified && r.authorization);
  if (last) writeFileSync(process.env.ASSERTION_FILE, last.authorization.replace(/^Bearer /, ''));
  up.requests.splice(0, Math.max(0, up.requests.length - 10));
}, 200);
