// An existing GraphQL API put behind tokengate (gateway mode, SPEC §8): a
// graphql-yoga server that trusts only tokengate's assertions. Every request
// must carry `Authorization: Bearer <assertion>`, a JWT tokengate signs with
// its deployment keys: verified here with jose against tokengate's JWKS, for
// this server's audience and tokengate's issuer. No tokengate code runs here.
//
//   TOKENGATE=http://127.0.0.1:8080 PORT=4000 node upstream.mjs
//
// The gateway tests import startUpstream() and drive it the same way.
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

import { createSchema, createYoga } from 'graphql-yoga';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const typeDefs = /* GraphQL */ `
  type Query {
    "Every order."
    orders: [Order!]!
    "One order by id."
    order(id: ID!): Order
    "Who tokengate says is calling: the verified assertion's claims."
    whoami: Caller!
    "Answers after ms milliseconds (for timeouts)."
    slow(ms: Int!): String
    "Always fails (for upstream errors)."
    fails: String
    "A string of mb mebibytes (for the gateway's response bound)."
    big(mb: Int!): String
  }
  type Mutation {
    "Places an order for the caller."
    placeOrder(item: String!): Order!
  }
  type Order {
    id: ID!
    item: String!
    placedBy: String!
  }
  type Caller {
    sub: String!
    scope: String!
    aud: String!
    iss: String!
    clientId: String
    requestId: String
    iat: Int!
    exp: Int!
  }
`;

/**
 * Starts the upstream on `port` (0: any free port) and resolves to
 * { url, requests, close() }. `tokengate` is tokengate's base URL (its JWKS is
 * at /.well-known/jwks.json and it is the expected issuer); `audience` the
 * `aud` expected (default: this server's GraphQL URL). `requests` records what
 * arrived: { authorization, cookie, query, verified, response } (response: the
 * body answered, as text, under 64 KiB). `extraQueryFields` adds
 * fields to Query (the tests' name collision). `indent` > 0 pretty-prints
 * the JSON answered, as some servers do.
 */
export async function startUpstream({ tokengate, audience, port = 0, extraQueryFields = '', indent = 0 } = {}) {
  const orders = [{ id: '1', item: 'tea', placedBy: 'seed' }];
  const schema = createSchema({
    typeDefs: typeDefs.replace('type Query {', `type Query {\n${extraQueryFields}`),
    resolvers: {
      Query: {
        orders: () => orders,
        order: (_, { id }) => orders.find((o) => o.id === id) || null,
        whoami: (_, __, { claims }) => ({ ...claims, clientId: claims.client_id, requestId: claims.request_id }),
        slow: async (_, { ms }) => {
          await new Promise((r) => setTimeout(r, ms));
          return `slept ${ms} ms`;
        },
        fails: () => {
          throw new Error('the orders database is on fire');
        },
        big: (_, { mb }) => 'x'.repeat(Math.min(mb, 64) * 1024 * 1024),
      },
      Mutation: {
        placeOrder: (_, { item }, { claims }) => {
          const order = { id: String(orders.length + 1), item, placedBy: claims.sub };
          orders.push(order);
          return order;
        },
      },
    },
  });
  const yoga = createYoga({ schema, graphqlEndpoint: '/graphql', landingPage: false, maskedErrors: false });
  const requests = [];
  let jwks;
  let expectedAudience = audience;
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks);
    let query = null;
    try {
      query = JSON.parse(raw.toString('utf8')).query;
    } catch {}
    const record = { authorization: req.headers.authorization || null, cookie: req.headers.cookie || null, query, verified: false };
    requests.push(record);
    const m = /^Bearer (.+)$/.exec(req.headers.authorization || '');
    let claims;
    try {
      if (!m) throw new Error('no assertion');
      ({ payload: claims } = await jwtVerify(m[1], jwks, { audience: expectedAudience, issuer: tokengate, algorithms: ['EdDSA'] }));
    } catch (e) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ message: `not from tokengate: ${e.message}` }] }));
      return;
    }
    record.verified = true;
    record.claims = claims;
    // The body was read for the log above: hand yoga a request with it again.
    const request = new Request(`http://${req.headers.host}${req.url}`, { method: req.method, headers: req.headers, body: raw });
    const response = await yoga.fetch(request, { claims });
    let body = Buffer.from(await response.arrayBuffer());
    if (indent > 0) body = Buffer.from(JSON.stringify(JSON.parse(body.toString('utf8')), null, indent));
    const headers = Object.fromEntries(response.headers);
    headers['content-length'] = String(body.length);
    res.writeHead(response.status, headers);
    if (body.length < 65536) record.response = body.toString('utf8');
    res.end(body);
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}/graphql`;
  expectedAudience = expectedAudience || url;
  jwks = createRemoteJWKSet(new URL('/.well-known/jwks.json', tokengate));
  return {
    url,
    requests,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const tokengate = process.env.TOKENGATE || 'http://127.0.0.1:8080';
  const up = await startUpstream({ tokengate, port: Number(process.env.PORT || 4000) });
  console.log(`upstream on ${up.url}, trusting ${tokengate}`);
}
