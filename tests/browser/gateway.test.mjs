// Gateway mode (SPEC §8) against a real upstream no one here wrote a server
// for: examples/gateway/upstream.mjs, a graphql-yoga app that verifies every
// request's assertion with jose against tokengate's JWKS. On SQLite and on
// PostgreSQL: upstream fields with the caller's identity, documents mixing
// tokengate's fields and the upstream's (aliases, fragments, variables),
// refusals that are never forwarded, 401 without contacting the upstream,
// upstream errors and timeouts, an upstream down at start, and a collision.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { buildSchema } from 'graphql';

import { startUpstream } from '../../examples/gateway/upstream.mjs';
import { connect, subscribe } from './graphql-ws-client.mjs';
import { ADMIN_EMAIL, ADMIN_PASSWORD, binary, freePort, freshPostgres, startServer } from './server.mjs';

async function signIn(url) {
  const res = await fetch(`${url}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  assert.equal(res.status, 200);
  return res.headers.get('set-cookie').split(';')[0];
}

async function gql(url, query, { token, cookie, variables, operationName, accept } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (cookie) headers.cookie = cookie;
  if (accept) headers.accept = accept;
  const res = await fetch(`${url}/api`, { method: 'POST', headers, body: JSON.stringify({ query, variables, operationName }) });
  return {
    status: res.status,
    requestId: res.headers.get('x-request-id'),
    contentType: res.headers.get('content-type'),
    body: await res.json(),
  };
}

async function issue(url, cookie, scopes, name = 'gw') {
  const r = await gql(
    url,
    'mutation($s: [String!], $n: String, $e: Int) { updateAccessToken(name: $n, scopes: $s, expirationTime: $e) { sessionJwt accessToken { id } } }',
    { cookie, variables: { s: scopes, n: name, e: Math.floor(Date.now() / 1000) + 3600 } },
  );
  assert.ok(r.body.data?.updateAccessToken, JSON.stringify(r.body));
  return r.body.data.updateAccessToken.sessionJwt;
}

function configFile(text) {
  const dir = mkdtempSync(join(tmpdir(), 'tokengate-gw-'));
  const path = join(dir, 'tokengate.toml');
  writeFileSync(path, text);
  return path;
}

const backends = [
  { name: 'sqlite', db: () => ({ url: undefined, drop() {} }) },
  { name: 'postgres', db: freshPostgres },
];

for (const backend of backends) {
  describe(`gateway on ${backend.name}`, () => {
    let db;
    let upstream;
    let server;
    let cookie;
    let full; // me:read tokens:read api:read api:write orders:read
    let readOnly; // me:read api:read

    before(async (t) => {
      db = backend.db();
      if (!db) return;
      const port = await freePort();
      // It pretty-prints its answers, as some servers do: tokengate must read
      // them, and one it passes on keeps that form.
      upstream = await startUpstream({ tokengate: `http://127.0.0.1:${port}`, indent: 1 });
      const config = configFile(
        `[upstream]\nurl = "${upstream.url}"\ntimeout = "1s"\n\n[upstream.scopes]\n"Query.order" = "orders:read"\n`,
      );
      server = await startServer({ databaseUrl: db.url, listen: `127.0.0.1:${port}`, args: ['--config', config] });
      cookie = await signIn(server.url);
      full = await issue(server.url, cookie, ['me:read', 'tokens:read', 'api:read', 'api:write', 'orders:read'], 'full');
      readOnly = await issue(server.url, cookie, ['me:read', 'api:read'], 'read-only');
    });
    after(async () => {
      await server?.stop();
      await upstream?.close();
      db?.drop();
    });

    it('serves upstream fields with a verified assertion of who is calling', async (t) => {
      if (!db) return t.skip('PostgreSQL unreachable');
      const before = upstream.requests.length;
      const r = await gql(server.url, '{ orders { id item } whoami { sub scope aud iss requestId iat exp } }', { token: full });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.errors, undefined, JSON.stringify(r.body));
      assert.deepEqual(r.body.data.orders[0], { id: '1', item: 'tea' });
      const me = await gql(server.url, '{ me { id } }', { token: full });
      const who = r.body.data.whoami;
      assert.equal(who.sub, me.body.data.me.id);
      assert.deepEqual(who.scope.split(' ').sort(), ['api:read', 'api:write', 'me:read', 'orders:read', 'tokens:read']);
      assert.equal(who.aud, upstream.url, 'aud defaults to the upstream URL');
      assert.equal(who.iss, server.url);
      assert.equal(who.requestId, r.requestId, 'the request id travels with the assertion');
      assert.ok(who.exp - who.iat <= 60, `exp ${who.exp} is at most 60 s after iat ${who.iat}`);
      // One request upstream, verified; neither the caller's token nor a cookie reached it.
      const sent = upstream.requests.slice(before);
      assert.equal(sent.length, 1);
      assert.equal(sent[0].verified, true);
      assert.ok(!sent[0].authorization.includes(full));
      assert.equal(sent[0].cookie, null);
      // With the session cookie too: the cookie never goes upstream.
      const viaCookie = await gql(server.url, '{ orders { id } }', { cookie });
      assert.equal(viaCookie.body.data.orders.length >= 1, true, JSON.stringify(viaCookie.body));
      assert.equal(upstream.requests.at(-1).cookie, null);
    });

    it('mixes tokengate and upstream fields: aliases, fragments and variables kept, order kept', async (t) => {
      if (!db) return t.skip('PostgreSQL unreachable');
      const before = upstream.requests.length;
      const r = await gql(
        server.url,
        `query Mixed($id: ID!, $unusedUpstream: Boolean = true) {
          me { email }
          first: order(id: $id) { ...O }
          ...R
          tokens: accessTokens { name }
        }
        fragment O on Order { id item }
        fragment R on Query { who: whoami { sub } }`,
        { token: full, variables: { id: '1' } },
      );
      assert.equal(r.body.errors, undefined, JSON.stringify(r.body));
      assert.deepEqual(Object.keys(r.body.data), ['me', 'first', 'who', 'tokens']);
      assert.equal(r.body.data.me.email, ADMIN_EMAIL);
      assert.deepEqual(r.body.data.first, { id: '1', item: 'tea' });
      assert.ok(r.body.data.tokens.some((t) => t.name === 'full'));
      const sent = upstream.requests.slice(before);
      assert.equal(sent.length, 1, 'one upstream request for the document');
      assert.doesNotMatch(sent[0].query, /\bme\b|accessTokens/, 'only upstream fields go upstream');
      assert.match(sent[0].query, /first: order\(id: \$id\)/);
      assert.match(sent[0].query, /fragment O on Order/);
      // A mutation, with its variables.
      const m = await gql(server.url, 'mutation($i: String!) { placeOrder(item: $i) { item placedBy } }', {
        token: full,
        variables: { i: 'coffee' },
      });
      assert.deepEqual(m.body.data.placeOrder.item, 'coffee', JSON.stringify(m.body));
      // The same mixed query over GET, then again over POST: GET parses the
      // document to refuse mutations, and that parse must not stand in for
      // the local part's (it did once, and poisoned the cache of parsed
      // documents for every later request of that query).
      const mixed = '{ me { email } orders { id } }';
      for (const viaGet of [true, false, true]) {
        const res = viaGet
          ? await fetch(`${server.url}/api?query=${encodeURIComponent(mixed)}`, { headers: { authorization: `Bearer ${full}` } })
          : await fetch(`${server.url}/api`, {
              method: 'POST',
              headers: { authorization: `Bearer ${full}`, 'content-type': 'application/json' },
              body: JSON.stringify({ query: mixed }),
            });
        const body = await res.json();
        assert.equal(body.errors, undefined, `${viaGet ? 'GET' : 'POST'}: ${JSON.stringify(body)}`);
        assert.equal(body.data.me.email, ADMIN_EMAIL);
        assert.ok(body.data.orders.length >= 1);
      }
    });

    it('sends an operation that is wholly the upstream\'s as written, and passes its answer on as it came', async (t) => {
      if (!db) return t.skip('PostgreSQL unreachable');
      // One operation, every root field the upstream's, nothing unused: its
      // text goes as it came (comments and all), with its variables, and the
      // upstream's body comes back byte for byte (pretty-printed as the
      // upstream wrote it; decoded and encoded again here it would not be).
      const text = `# as written
        query Whole($id: ID!) { last: order(id: $id) { item } orders { id } orders { item } who: whoami { sub } }`;
      for (const accept of ['application/json', 'application/graphql-response+json']) {
        const before = upstream.requests.length;
        const res = await fetch(`${server.url}/api`, {
          method: 'POST',
          headers: { authorization: `Bearer ${full}`, 'content-type': 'application/json', accept },
          body: JSON.stringify({ query: text, variables: { id: '1', notDefined: 'x' } }),
        });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('content-type'), accept);
        const raw = await res.text();
        const sent = upstream.requests.slice(before);
        assert.equal(sent.length, 1);
        assert.equal(sent[0].query, text, 'sent as written');
        assert.equal(raw, sent[0].response, 'answered as the upstream did');
        assert.match(raw, /^{\n "data": {\n  "last": {/);
        const body = JSON.parse(raw);
        assert.deepEqual(Object.keys(body.data), ['last', 'orders', 'who'], 'keys in the order asked, repeats merged');
        assert.deepEqual(body.data.last, { item: 'tea' });
        assert.deepEqual(body.data.orders[0], { id: '1', item: 'tea' });
      }
      // Mixed with a field of tokengate's, the answer is merged here (so
      // the byte-for-byte check above can fail).
      const mixed = await fetch(`${server.url}/api`, {
        method: 'POST',
        headers: { authorization: `Bearer ${full}`, 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ me { email } orders { item } }' }),
      });
      assert.match(await mixed.text(), /^{"data":{"me":{"email":"[^"]+"},"orders":\[{"item":"tea"}/);
      // Its errors are still tokengate's UPSTREAM_ERROR, never passed on as they came.
      const failed = await gql(server.url, '{ fails }', { token: full });
      assert.equal(failed.body.data.fails, null);
      assert.equal(failed.body.errors[0].extensions.code, 'UPSTREAM_ERROR', JSON.stringify(failed.body));
      assert.deepEqual(failed.body.errors[0].path, ['fails']);
      // Documents that hold more than the operation sent are printed: another
      // operation (naming tokengate's fields), a fragment or a variable unused.
      for (const [query, operationName, variables] of [
        ['query Up { orders { item } } query Local { me { email } }', 'Up', undefined],
        ['{ orders { item } } fragment Unused on User { email }', undefined, undefined],
        ['query($unused: ID) { orders { item } }', undefined, { unused: '1' }],
      ]) {
        const before = upstream.requests.length;
        const r = await gql(server.url, query, { token: full, operationName, variables });
        assert.equal(r.body.errors, undefined, `${query}: ${JSON.stringify(r.body)}`);
        assert.deepEqual(Object.keys(r.body.data), ['orders']);
        assert.deepEqual(r.body.data.orders[0], { item: 'tea' });
        const sent = upstream.requests.slice(before);
        assert.equal(sent.length, 1);
        assert.doesNotMatch(sent[0].query, /\bme\b|Local|Unused|unused/, 'only what the operation uses goes upstream');
      }
    });

    it('refuses upstream fields the token lacks scopes for, without forwarding them', async (t) => {
      if (!db) return t.skip('PostgreSQL unreachable');
      const before = upstream.requests.length;
      const r = await gql(server.url, '{ me { email } order(id: "1") { id } }', { token: readOnly });
      assert.equal(r.body.data.me.email, ADMIN_EMAIL);
      assert.equal(r.body.data.order, null);
      assert.equal(r.body.errors[0].extensions.code, 'FORBIDDEN');
      assert.equal(r.body.errors[0].extensions.requiredScope, 'orders:read', 'from [upstream.scopes]');
      assert.deepEqual(r.body.errors[0].path, ['order']);
      const m = await gql(server.url, 'mutation { placeOrder(item: "x") { id } }', { token: readOnly });
      assert.equal(m.body.errors[0].extensions.requiredScope, 'api:write', 'the default for mutations');
      assert.equal(upstream.requests.length, before, 'nothing was sent upstream');
      // Unauthenticated: 401, and the upstream is not contacted.
      const anon = await gql(server.url, '{ orders { id } }');
      assert.equal(anon.status, 401);
      assert.equal(upstream.requests.length, before);
    });

    it('serves one schema: introspection and the SDL show both sides, with their scopes', async (t) => {
      if (!db) return t.skip('PostgreSQL unreachable');
      const r = await gql(
        server.url,
        '{ __schema { queryType { fields { name } } mutationType { fields { name } } } order: __type(name: "Order") { fields { name } } me { email } orders { id } }',
        { token: full },
      );
      assert.equal(r.body.errors, undefined, JSON.stringify(r.body));
      const q = r.body.data.__schema.queryType.fields.map((f) => f.name);
      for (const f of ['me', 'accessTokens', 'orders', 'order', 'whoami']) assert.ok(q.includes(f), `Query.${f} in ${q}`);
      const m = r.body.data.__schema.mutationType.fields.map((f) => f.name);
      for (const f of ['updateAccessToken', 'placeOrder']) assert.ok(m.includes(f), `Mutation.${f} in ${m}`);
      assert.deepEqual(r.body.data.order.fields.map((f) => f.name), ['id', 'item', 'placedBy']);
      assert.deepEqual(Object.keys(r.body.data), ['__schema', 'order', 'me', 'orders']);
      const sdl = await (await fetch(`${server.url}/api/schema.graphql`, { headers: { authorization: `Bearer ${full}` } })).text();
      assert.match(sdl, /orders: \[Order!\]! @requiresScopes\(scopes: \[\["api:read"\]\]\)/);
      assert.match(sdl, /order\(id: ID!\): Order @requiresScopes\(scopes: \[\["orders:read"\]\]\)/);
      assert.match(sdl, /placeOrder\(item: String!\): Order! @requiresScopes\(scopes: \[\["api:write"\]\]\)/);
      assert.match(sdl, /me: User! @requiresScopes\(scopes: \[\["me:read"\]\]\)/);
      assert.match(sdl, /type Order \{/);
      buildSchema(sdl); // graphql-js reads it: every directive used is defined
      // requiredScopes knows the upstream's fields too.
      const need = await gql(server.url, 'query($q: String!) { requiredScopes(query: $q) }', {
        token: full,
        variables: { q: '{ me { email } order(id: "1") { item } orders { id } } ' },
      });
      assert.deepEqual([...need.body.data.requiredScopes].sort(), ['api:read', 'me:read', 'orders:read'], JSON.stringify(need.body));
    });

    it('forwards queries sent over the WebSocket too; subscriptions stay tokengate\'s', async (t) => {
      if (!db) return t.skip('PostgreSQL unreachable');
      const client = connect(server.url, { init: { authorization: `Bearer ${full}` } });
      const narrow = connect(server.url, { init: { authorization: `Bearer ${readOnly}` } });
      try {
        const op = subscribe(client, '{ me { email } orders { item } }');
        const first = await op.next();
        assert.equal(first.data.me.email, ADMIN_EMAIL, JSON.stringify(first));
        assert.equal(first.data.orders[0].item, 'tea');
        await op.done;
        const refused = subscribe(narrow, '{ order(id: "1") { id } }');
        const r = await refused.next();
        assert.equal(r.errors[0].extensions.code, 'FORBIDDEN');
      } finally {
        client.dispose();
        narrow.dispose();
      }
    });

    it('reports upstream errors and timeouts on the upstream fields only', async (t) => {
      if (!db) return t.skip('PostgreSQL unreachable');
      const r = await gql(server.url, '{ me { email } fails }', { token: full });
      assert.equal(r.body.data.me.email, ADMIN_EMAIL);
      assert.equal(r.body.data.fails, null);
      assert.equal(r.body.errors[0].extensions.code, 'UPSTREAM_ERROR');
      assert.deepEqual(r.body.errors[0].path, ['fails']);
      assert.match(r.body.errors[0].message, /on fire/);
      const big = await gql(server.url, '{ me { email } big(mb: 9) }', { token: full });
      assert.equal(big.body.data.me.email, ADMIN_EMAIL);
      assert.equal(big.body.data.big, null);
      assert.equal(big.body.errors[0].extensions.code, 'UPSTREAM_ERROR');
      assert.match(big.body.errors[0].message, /too large/);
      const slow = await gql(server.url, '{ me { email } slow(ms: 3000) }', { token: full });
      assert.equal(slow.body.data.me.email, ADMIN_EMAIL);
      assert.equal(slow.body.data.slow, null);
      assert.equal(slow.body.errors[0].extensions.code, 'UPSTREAM_TIMEOUT', JSON.stringify(slow.body));
    });
  });
}

describe('gateway start-up', () => {
  it('an upstream down at start: tokengate serves, /readyz says so, then it is picked up', async () => {
    const port = await freePort();
    const upstreamPort = await freePort();
    const upstreamUrl = `http://127.0.0.1:${upstreamPort}/graphql`;
    const server = await startServer({ listen: `127.0.0.1:${port}`, args: ['--upstream', upstreamUrl] });
    try {
      const ready = await fetch(`${server.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.match(await ready.text(), /upstream .* is unreachable/);
      const cookie = await signIn(server.url);
      assert.equal((await gql(server.url, '{ me { email } }', { cookie })).body.data.me.email, ADMIN_EMAIL);
      const upstream = await startUpstream({ tokengate: server.url, port: upstreamPort });
      try {
        let status = 0;
        for (let i = 0; i < 50 && status !== 200; i++) {
          await new Promise((r) => setTimeout(r, 200));
          status = (await fetch(`${server.url}/readyz`)).status;
        }
        assert.equal(status, 200, 'ready once the upstream answers');
        const r = await gql(server.url, '{ orders { item } }', { cookie });
        assert.equal(r.body.data.orders[0].item, 'tea', JSON.stringify(r.body));
      } finally {
        await upstream.close();
      }
    } finally {
      await server.stop();
    }
  });

  it('SIGHUP reads the upstream schema again', async () => {
    const port = await freePort();
    const upstreamPort = await freePort();
    let upstream = await startUpstream({ tokengate: `http://127.0.0.1:${port}`, port: upstreamPort });
    const server = await startServer({ listen: `127.0.0.1:${port}`, args: ['--upstream', upstream.url] });
    try {
      const cookie = await signIn(server.url);
      const fields = async () =>
        (await gql(server.url, '{ __schema { queryType { fields { name } } } }', { cookie })).body.data.__schema.queryType.fields.map((f) => f.name);
      assert.ok(!(await fields()).includes('newField'));
      // The upstream is redeployed with a new field; tokengate is told.
      await upstream.close();
      upstream = await startUpstream({ tokengate: server.url, port: upstreamPort, extraQueryFields: 'newField: String' });
      process.kill(server.pid, 'SIGHUP');
      let seen = false;
      for (let i = 0; i < 50 && !seen; i++) {
        await new Promise((r) => setTimeout(r, 100));
        seen = (await fields()).includes('newField');
      }
      assert.ok(seen, 'the new upstream field is served after SIGHUP');
      const r = await gql(server.url, '{ newField orders { item } }', { cookie });
      assert.equal(r.body.data.orders[0].item, 'tea', JSON.stringify(r.body));
    } finally {
      await server.stop();
      await upstream.close();
    }
  });

  it('a root field on both sides stops the start, naming it', async () => {
    const port = await freePort();
    const upstream = await startUpstream({ tokengate: `http://127.0.0.1:${port}`, extraQueryFields: 'me: String\naccessTokens: Int' });
    try {
      const dir = mkdtempSync(join(tmpdir(), 'tokengate-gw-'));
      const child = spawn(
        binary(),
        ['--listen', `127.0.0.1:${port}`, '--database-url', `sqlite://${join(dir, 'db')}?mode=rwc`, '--upstream', upstream.url],
        { env: { ...process.env, TOKENGATE_ADMIN_EMAIL: ADMIN_EMAIL, TOKENGATE_ADMIN_PASSWORD: ADMIN_PASSWORD }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const code = await new Promise((r) => child.once('exit', r));
      assert.notEqual(code, 0);
      assert.match(stderr, /Query\.me/);
      assert.match(stderr, /Query\.accessTokens/);
      assert.match(stderr, /collide/);
    } finally {
      await upstream.close();
    }
  });
});
