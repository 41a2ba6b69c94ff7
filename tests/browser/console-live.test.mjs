// The console keeps its list current over a WebSocket to /api (accessTokenEvents,
// graphql-transport-ws): tokens issued and revoked from the command line show
// up in an open console without a reload, focus and the shown-once token panel
// stay put, a dropped connection comes back by itself, and a session ended
// elsewhere is said on the page. Debian's Chromium driven by playwright-core,
// against a real tokengate: run with `node --test` here.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { chromium } from 'playwright-core';

import { ADMIN_EMAIL, ADMIN_PASSWORD, startServer } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

let server;
let browser;
const problems = []; // script errors and CSP violations seen by any page

async function newContext(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...options });
  context.on('page', watchPage);
  return context;
}

function watchPage(page) {
  page.on('pageerror', (e) => problems.push(`page error on ${page.url()}: ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 401/.test(text)) {
      problems.push(`console error on ${page.url()}: ${text}`);
    }
  });
}

async function signIn(page, next) {
  await page.goto(`${server.url}/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Email').fill(ADMIN_EMAIL);
  await page.getByLabel('Password').fill(ADMIN_PASSWORD);
  await Promise.all([page.waitForURL(`${server.url}${next}`), page.getByRole('button', { name: 'Sign in' }).click()]);
}

async function sessionCookie(context) {
  const c = (await context.cookies(server.url)).find((k) => k.name === 'tokengate_session');
  assert.ok(c, 'signed in: the session cookie is set');
  return `${c.name}=${c.value}`;
}

/** `tokengate token issue` on the server's database (another process): the new token's id. */
function issueFromCli(name) {
  const out = server.cli(['token', 'issue', '--email', ADMIN_EMAIL, '--name', name, '--expires', '1d']);
  assert.equal(out.status, 0, out.stderr);
  const m = /issued token (\S+) \(/.exec(out.stderr);
  assert.ok(m, `the CLI names the token's id: ${out.stderr}`);
  return m[1];
}

/** POST /api from outside the browser (node's fetch). */
async function api(query, { cookie, variables } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (cookie) headers.cookie = cookie;
  const res = await fetch(`${server.url}/api`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = await res.json();
  assert.equal(body.errors, undefined, JSON.stringify(body));
  return body.data;
}

function revokeFromCli(id) {
  const out = server.cli(['token', 'revoke', id]);
  assert.equal(out.status, 0, out.stderr);
}

/**
 * Records the page's WebSockets to /api and what went over them; `subscribed()`
 * resolves once the n-th socket has sent its subscribe.
 */
function watchSockets(page) {
  const sockets = [];
  const waiters = [];
  page.on('websocket', (ws) => {
    if (new URL(ws.url()).pathname !== '/api') return;
    const entry = { ws, sent: [], received: [], closed: false };
    sockets.push(entry);
    ws.on('framesent', (f) => {
      entry.sent.push(JSON.parse(f.payload));
      for (const w of [...waiters]) w();
    });
    ws.on('framereceived', (f) => entry.received.push(JSON.parse(f.payload)));
    ws.on('close', () => (entry.closed = true));
  });
  const isSubscribed = (n) => sockets.length >= n && sockets[n - 1].sent.some((m) => m.type === 'subscribe');
  return {
    sockets,
    subscribed(n = 1) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`socket ${n} did not subscribe in time`)), 10_000);
        const check = () => {
          if (!isSubscribed(n)) return;
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(check), 1);
          // The server starts the operation right after; give it a moment to listen.
          setTimeout(resolve, 300);
        };
        waiters.push(check);
        check();
      });
    },
  };
}

const row = (page, name) => page.locator('#tokens tbody tr', { hasText: name });
const focusedLabel = (page) =>
  page.evaluate(() => document.activeElement && (document.activeElement.getAttribute('aria-label') || document.activeElement.id));

before(async () => {
  server = await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

describe('console live updates', () => {
  let context;
  let page;
  let sockets;

  before(async () => {
    context = await newContext();
    page = await context.newPage();
    sockets = watchSockets(page);
  });
  after(async () => context?.close());

  it('subscribes to accessTokenEvents over graphql-transport-ws after the first load', async () => {
    await signIn(page, '/console');
    await page.getByText('You have no active tokens.').waitFor();
    await sockets.subscribed(1);
    const [first] = sockets.sockets;
    assert.equal(new URL(first.ws.url()).protocol, 'ws:');
    assert.equal(first.sent[0].type, 'connection_init');
    assert.equal(first.received[0].type, 'connection_ack');
    const subscribe = first.sent.find((m) => m.type === 'subscribe');
    assert.equal(subscribe.id, 'events');
    assert.match(subscribe.payload.query, /subscription \{ accessTokenEvents \{ kind token \{ id \} \} \}/);
  });

  it('shows a token issued from the command line, keeping the focus and the new-token panel', async () => {
    // A token made in the page: its shown-once panel is open, focus on its Revoke button.
    await page.getByLabel('Name').fill('in-page');
    await page.getByRole('button', { name: 'Proceed' }).click();
    await page.locator('#new-token').waitFor();
    const shown = await page.getByLabel(/^Token/).inputValue();
    assert.match(shown, /^eyJ/);
    await row(page, 'in-page').waitFor();
    await row(page, 'in-page').getByRole('button', { name: 'Revoke token in-page' }).focus();
    // No reload from here on: this marker would be gone.
    await page.evaluate(() => (window.liveTestMarker = true));

    const cliId = issueFromCli('from-cli');
    await row(page, 'from-cli').waitFor({ timeout: 5000 });
    assert.equal(await row(page, 'from-cli').locator('td[data-label="Status"]').textContent(), 'active');

    assert.equal(await page.evaluate(() => window.liveTestMarker), true, 'the page was not reloaded');
    assert.equal(await page.locator('#new-token').isVisible(), true, 'the new-token panel is still shown');
    assert.equal(await page.getByLabel(/^Token/).inputValue(), shown, 'with the same token');
    assert.equal(await focusedLabel(page), 'Revoke token in-page', 'the focus stayed on the same button');

    // Revoked from the command line: it leaves the list (active tokens only by
    // default), and the focus, which was on its button, lands just above the list.
    await row(page, 'from-cli').getByRole('button', { name: 'Revoke token from-cli' }).focus();
    revokeFromCli(cliId);
    await row(page, 'from-cli').waitFor({ state: 'detached', timeout: 5000 });
    await row(page, 'in-page').waitFor();
    assert.equal(await focusedLabel(page), 'show-inactive', 'the focus is not lost to the page');
    assert.equal(await page.evaluate(() => window.liveTestMarker), true, 'the page was not reloaded');
    assert.equal(await page.getByLabel(/^Token/).inputValue(), shown);

    // Shown among the inactive ones as revoked.
    await page.getByLabel('Show revoked and expired tokens').check();
    await row(page, 'from-cli').locator('td[data-label="Status"]', { hasText: 'revoked' }).waitFor();
    await page.getByLabel('Show revoked and expired tokens').uncheck();
    await row(page, 'from-cli').waitFor({ state: 'detached' });
    assert.equal(sockets.sockets.length, 1, 'one connection all along');
  });

  it('a burst of changes is one refresh, not one per event', async () => {
    const cookie = await sessionCookie(context);
    const lists = [];
    const onRequest = (r) => {
      if (new URL(r.url()).pathname === '/api' && r.method() === 'POST' && r.postData().includes('accessTokens')) lists.push(r);
    };
    page.on('request', onRequest);
    const names = ['burst-1', 'burst-2', 'burst-3', 'burst-4'];
    const exp = Math.floor(Date.now() / 1000) + 3600;
    await Promise.all(
      names.map((name) =>
        api('mutation($exp: Int, $name: String!) { updateAccessToken(expirationTime: $exp, name: $name) { accessToken { id } } }', {
          cookie,
          variables: { exp, name },
        }),
      ),
    );
    for (const name of names) await row(page, name).waitFor({ timeout: 5000 });
    await page.waitForTimeout(500);
    page.off('request', onRequest);
    // Four events at once: fewer list requests than events (one, unless the
    // server was slow enough to space them out).
    assert.ok(lists.length >= 1 && lists.length <= 2, `${lists.length} list requests for 4 events`);
  });

  it('says the session ended when it is signed out elsewhere, and does not retry', async () => {
    const cookie = await sessionCookie(context);
    const res = await fetch(`${server.url}/auth/logout`, { method: 'POST', headers: { cookie, origin: server.url } });
    assert.equal(res.status, 200);
    const status = page.locator('#status');
    await status.getByText('Your session has ended.').waitFor({ timeout: 5000 });
    const link = status.getByRole('link', { name: 'Sign in again' });
    assert.equal(await link.getAttribute('href'), '/login?next=/console');
    const [only] = sockets.sockets;
    const error = only.received.find((m) => m.type === 'error' && m.id === 'events');
    assert.ok(error, 'the server ended the operation with an error');
    assert.equal(error.payload[0].extensions.code, 'UNAUTHENTICATED');
    // Longer than the first back-off step: no new connection.
    await page.waitForTimeout(1500);
    assert.equal(sockets.sockets.length, 1, 'no reconnection after the session ended');
    assert.equal(await page.evaluate(() => window.liveTestMarker), true, 'the page was not reloaded');
  });
});

describe('console live updates: a dropped connection', () => {
  it('reconnects quietly with back-off and catches up on what it missed', async () => {
    const context = await newContext();
    const page = await context.newPage();
    // Every socket of the page to /api goes through here, on to the server, so
    // the test can cut one as a network would.
    const routed = [];
    await page.routeWebSocket(/\/api$/, (ws) => {
      const upstream = ws.connectToServer();
      routed.push({ ws, upstream, at: Date.now() });
    });
    const sockets = watchSockets(page);
    await signIn(page, '/console');
    await page.getByText(`Signed in as ${ADMIN_EMAIL}`).waitFor();
    await sockets.subscribed(1);
    assert.equal(routed.length, 1);

    // The connection drops (the page sees 1011; the server its own close).
    const dropped = Date.now();
    routed[0].upstream.close();
    routed[0].ws.close({ code: 1011, reason: 'gone' });
    // Missed while it was down (over HTTP: in the server's own process the
    // event is out before the answer, well within the first back-off step).
    await api('mutation($exp: Int) { updateAccessToken(expirationTime: $exp, name: "while-away") { accessToken { id } } }', {
      cookie: await sessionCookie(context),
      variables: { exp: Math.floor(Date.now() / 1000) + 3600 },
    });
    assert.equal(routed.length, 1, 'still down');
    await sockets.subscribed(2);
    assert.equal(routed.length, 2);
    const waited = routed[1].at - dropped;
    assert.ok(waited >= 900, `the first retry came after ${waited} ms`);
    // Back: the list is refreshed, and events flow again.
    await row(page, 'while-away').waitFor({ timeout: 5000 });
    issueFromCli('after-return');
    await row(page, 'after-return').waitFor({ timeout: 5000 });
    // Quiet: nothing in the status line.
    assert.equal((await page.locator('#status').textContent()).trim(), '');
    await context.close();
  });
});

describe('console live updates: the protocol by hand', () => {
  it('answers pings, and stops for good when the operation is refused', async () => {
    const context = await newContext();
    const page = await context.newPage();
    // A stand-in server: acknowledges, pings, then refuses the subscription as
    // the server would for a credential without tokens:read.
    const connections = [];
    await page.routeWebSocket(/\/api$/, (ws) => {
      const seen = [];
      connections.push({ ws, seen, closed: false });
      ws.onClose(() => (connections.find((c) => c.ws === ws).closed = true));
      ws.onMessage((text) => {
        const m = JSON.parse(text);
        seen.push(m);
        if (m.type === 'connection_init') {
          ws.send(JSON.stringify({ type: 'connection_ack' }));
          ws.send(JSON.stringify({ type: 'ping' }));
        } else if (m.type === 'pong') {
          const subscribe = seen.find((x) => x.type === 'subscribe');
          if (subscribe) {
            const payload = [{ message: 'needs tokens:read', extensions: { code: 'FORBIDDEN', requiredScope: 'tokens:read' } }];
            ws.send(JSON.stringify({ type: 'error', id: subscribe.id, payload }));
          }
        }
      });
    });
    await signIn(page, '/console');
    await page.getByText(`Signed in as ${ADMIN_EMAIL}`).waitFor();
    const start = Date.now();
    while (!(connections.length && connections[0].closed) && Date.now() - start < 5000) await page.waitForTimeout(50);
    const [only] = connections;
    assert.deepEqual(
      only.seen.map((m) => m.type),
      ['connection_init', 'subscribe', 'pong'],
      'init, subscribe after the ack, pong to the ping',
    );
    assert.equal(only.closed, true, 'the page closed the socket after the error');
    // Past the first back-off steps: no retry, and nothing said.
    await page.waitForTimeout(3500);
    assert.equal(connections.length, 1, 'no reconnection after an operation error');
    assert.equal((await page.locator('#status').textContent()).trim(), '');
    await context.close();
  });
});

describe('no problems', () => {
  it('no script error or CSP violation on any page', () => {
    assert.deepEqual(problems, []);
  });
});
