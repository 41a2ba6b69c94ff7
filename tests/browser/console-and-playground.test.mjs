// The console and the playground in a real browser (Debian's Chromium driven by
// playwright-core) against a real tokengate: run with `node --test` here.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chromium } from 'playwright-core';

import { ADMIN_EMAIL, ADMIN_PASSWORD, repoRoot, startServer } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SCREENSHOTS = join(repoRoot, 'docs', 'screenshots');

let server;
let browser;
const requests = []; // every URL any page asked for
const problems = []; // script errors and CSP violations seen by any page

async function newContext(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...options });
  context.on('request', (r) => requests.push(r.url()));
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

/** POST /api from outside the browser (node's fetch). */
async function api(query, { token, cookie, variables } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (cookie) headers.cookie = cookie;
  const res = await fetch(`${server.url}/api`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  return { status: res.status, body: await res.json() };
}

async function sessionCookie(context) {
  const c = (await context.cookies(server.url)).find((k) => k.name === 'tokengate_session');
  assert.ok(c, 'signed in: the session cookie is set');
  assert.equal(c.httpOnly, true);
  return `${c.name}=${c.value}`;
}

function assertPageHeaders(headers, { noStore }) {
  const csp = headers['content-security-policy'] || '';
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /script-src[^;]*unsafe-inline/);
  assert.equal(headers['x-frame-options'], 'DENY');
  assert.ok(headers['referrer-policy'], 'Referrer-Policy is set');
  if (noStore) assert.match(headers['cache-control'] || '', /no-store/);
}

/** No element wider than the viewport: the page reads at this width. */
async function assertNoHorizontalScroll(page) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  assert.ok(scroll <= width, `page is ${scroll}px wide in a ${width}px window`);
}

async function assertEveryInputLabelled(page) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input:not([type=hidden]), textarea, select')]
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
      .map((el) => el.id || el.name || el.outerHTML.slice(0, 60)),
  );
  assert.deepEqual(unlabelled, []);
}

// GraphiQL's editors are CodeMirror 5 instances; their wrapper element holds the editor.
const setEditor = (page, selector, text) =>
  page.evaluate(([s, t]) => document.querySelector(s).CodeMirror.setValue(t), [selector, text]);
const editorValue = (page, selector) => page.evaluate((s) => document.querySelector(s).CodeMirror.getValue(), selector);
const QUERY_EDITOR = '.graphiql-query-editor .CodeMirror';
const RESPONSE = '.graphiql-response .CodeMirror';
const HEADERS_EDITOR = '.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror';

async function runInPlayground(page, query, expect) {
  await setEditor(page, QUERY_EDITOR, query);
  await page.locator('.graphiql-execute-button').click();
  await page.waitForFunction(
    ([s, e]) => document.querySelector(s).CodeMirror.getValue().includes(e),
    [RESPONSE, expect],
    { timeout: 15_000 },
  );
  return JSON.parse(await editorValue(page, RESPONSE));
}

/** The notice the playground shows above GraphiQL when signed out. */
const signedOutNotice = (page) => page.getByRole('status').filter({ hasText: 'Not signed in' });

/** Signs in over HTTP (node's fetch, not the browser) and returns the session cookie. */
async function signInOverHttp() {
  const res = await fetch(`${server.url}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  assert.equal(res.status, 200);
  const set = res.headers.getSetCookie().find((c) => c.startsWith('tokengate_session='));
  assert.ok(set, 'sign-in sets the session cookie');
  return set.split(';')[0];
}

/** A token of the administrator's, issued with the session cookie, with these scopes. */
async function issueToken(cookie, name, scopes) {
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const issued = await api(
    'mutation($exp: Int, $name: String, $scopes: [String!]) { updateAccessToken(expirationTime: $exp, name: $name, scopes: $scopes) { sessionJwt } }',
    { cookie, variables: { exp, name, scopes } },
  );
  assert.equal(issued.status, 200);
  const token = issued.body.data?.updateAccessToken?.sessionJwt;
  assert.ok(token, 'a token was issued');
  return token;
}

before(async () => {
  server = await startServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  mkdirSync(SCREENSHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

describe('signed out', () => {
  it('/api in a browser is the playground with a sign-in notice, /console redirects to sign-in', async () => {
    const context = await newContext();
    const page = await context.newPage();
    const res = await page.goto(`${server.url}/api`);
    assert.equal(res.status(), 200);
    assertPageHeaders(res.headers(), { noStore: true });
    assert.equal(res.headers().vary, 'Accept, Cookie');
    assert.equal(res.headers()['www-authenticate'], undefined);
    const notice = signedOutNotice(page);
    await notice.waitFor();
    const link = notice.getByRole('link', { name: 'sign in', exact: true });
    assert.equal(await link.getAttribute('href'), '/login?next=/api');
    await page.locator(QUERY_EDITOR).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0, 'no sign-out button signed out');

    // The same URL for a script still answers GraphQL-style JSON.
    const plain = await fetch(`${server.url}/api`);
    assert.equal(plain.status, 401);
    assert.match(plain.headers.get('content-type'), /application\/json/);
    const withQuery = await fetch(`${server.url}/api?query=%7Bme%7Bemail%7D%7D`, { headers: { accept: 'text/html' } });
    assert.equal(withQuery.status, 401);
    assert.match(withQuery.headers.get('content-type'), /application\/json/);

    const consoleRes = await fetch(`${server.url}/console`, { redirect: 'manual' });
    assert.equal(consoleRes.status, 303);
    assert.equal(consoleRes.headers.get('location'), '/login?next=/console');

    // Wrong password: the error shows on the page, next is kept.
    await link.click();
    await page.waitForURL(`${server.url}/login?next=/api`);
    await page.getByLabel('Email').fill(ADMIN_EMAIL);
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong email or password.' }).waitFor();
    assert.equal(await page.locator('input[name=next]').inputValue(), '/api');
    await context.close();
  });

  it('the sign-in page is labelled and reads at 400 px', async () => {
    const context = await newContext({ viewport: { width: 400, height: 800 } });
    const page = await context.newPage();
    const res = await page.goto(`${server.url}/login`);
    assertPageHeaders(res.headers(), { noStore: false });
    await assertEveryInputLabelled(page);
    await assertNoHorizontalScroll(page);

    // Assets: right content types; the versioned URLs pages use are cached for good.
    const css = await page.locator('link[rel=stylesheet]').getAttribute('href');
    assert.match(css, /^\/assets\/style\.css\?v=[0-9a-f]{12}$/);
    const cssRes = await fetch(`${server.url}${css}`);
    assert.match(cssRes.headers.get('content-type'), /^text\/css/);
    assert.match(cssRes.headers.get('cache-control'), /max-age=31536000, immutable/);
    const js = await fetch(`${server.url}/assets/playground.js`);
    assert.match(js.headers.get('content-type'), /^text\/javascript/);
    assert.doesNotMatch(js.headers.get('cache-control'), /immutable/);
    assert.equal((await fetch(`${server.url}/assets/nope.js`)).status, 404);

    await page.goto(`${server.url}/api`);
    await assertNoHorizontalScroll(page);
    await context.close();
  });
});

describe('console', () => {
  let context;
  let page;
  let token;

  before(async () => {
    context = await newContext();
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    page = await context.newPage();
  });
  after(async () => context?.close());

  it('signs in through /console and lists tokens', async () => {
    await page.goto(`${server.url}/console`);
    await page.waitForURL(`${server.url}/login?next=/console`);
    await signIn(page, '/console');
    const res = await page.reload();
    assertPageHeaders(res.headers(), { noStore: true });
    assert.doesNotMatch(res.headers()['content-security-policy'], /unsafe-inline/);
    await page.getByText(`Signed in as ${ADMIN_EMAIL}`).waitFor();
    await page.getByText('You have no active tokens.').waitFor();
    await assertEveryInputLabelled(page);
    // The expiry picker stops at the configured maximum (180 days by default).
    const main = page.locator('#console');
    assert.equal(await main.getAttribute('data-max-lifetime-seconds'), String(180 * 86400));
    const max = await page.getByLabel('Expires on').getAttribute('max');
    const days = (Date.parse(max) - Date.parse(new Date().toISOString().slice(0, 10))) / 86400e3;
    assert.ok(days >= 179 && days <= 181, `max date ${max} is ${days} days away`);
    // Scope checkboxes: the administrator's scopes, me:read ticked.
    for (const s of ['me:read', 'tokens:read', 'tokens:write', 'users:read', 'users:write']) {
      await page.getByRole('checkbox', { name: s, exact: true }).waitFor();
    }
    assert.equal(await page.getByRole('checkbox', { name: 'me:read' }).isChecked(), true);
  });

  it('generates a token, shows it once with a copy button', async () => {
    await page.getByLabel('Name').fill('browser-ci');
    await page.getByRole('checkbox', { name: 'tokens:read' }).check();
    await page.getByRole('button', { name: 'Proceed' }).click();
    const box = page.locator('#new-token');
    await box.waitFor();
    await page.getByText('It will not be shown again').waitFor();
    token = await page.getByLabel(/^Token/).inputValue();
    assert.match(token, /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
    await page.locator('#tokens tbody tr', { hasText: 'browser-ci' }).waitFor();

    await page.getByRole('button', { name: 'Copy token' }).click();
    await page.getByText('Copied to the clipboard.').waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), token);

    await page.screenshot({ path: join(SCREENSHOTS, 'console.png'), fullPage: true });

    // Reload: the token is gone for good (kept nowhere, page never cached).
    await page.reload();
    await page.locator('#tokens tbody tr', { hasText: 'browser-ci' }).waitFor();
    assert.equal(await box.isVisible(), false);
    assert.equal(await page.getByLabel(/^Token/).inputValue(), '');
    assert.equal((await page.content()).includes(token), false);
  });

  it('the token works as Bearer from outside the browser', async () => {
    const me = await api('{ me { email } }', { token });
    assert.equal(me.status, 200);
    assert.deepEqual(me.body, { data: { me: { email: ADMIN_EMAIL } } });
    const list = await api('{ accessTokens { name scopes } }', { token });
    assert.deepEqual(list.body.data.accessTokens.map((t) => t.name), ['browser-ci']);
    assert.deepEqual(list.body.data.accessTokens[0].scopes, ['me:read', 'tokens:read']);
    // The console shows the use (last-used times are written in batches).
    const row = page.locator('#tokens tbody tr', { hasText: 'browser-ci' });
    for (let i = 0; ; i++) {
      await page.reload();
      const lastUsed = await row.locator('td[data-label="Last used"]').textContent();
      if (lastUsed !== 'never') break;
      assert.ok(i < 20, 'last used shows up in the console');
      await page.waitForTimeout(500);
    }
  });

  it('revokes with confirmation (keyboard first: Escape cancels)', async () => {
    const row = page.locator('#tokens tbody tr', { hasText: 'browser-ci' });
    const revoke = row.getByRole('button', { name: 'Revoke token browser-ci' });
    await revoke.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Revoke this token?' });
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal((await api('{ me { email } }', { token })).status, 200, 'cancel keeps the token');

    await revoke.click();
    await dialog.getByRole('button', { name: 'Revoke' }).click();
    await page.getByText('Token "browser-ci" revoked.').waitFor();
    await page.getByText('You have no active tokens.').waitFor();
    await page.getByLabel('Show revoked and expired tokens').check();
    await row.locator('td[data-label="Status"]', { hasText: 'revoked' }).waitFor();

    const refused = await api('{ me { email } }', { token });
    assert.equal(refused.status, 401);
    assert.equal(refused.body.errors[0].extensions.code, 'UNAUTHENTICATED');
    assert.equal(refused.body.errors[0].extensions.reason, 'revoked');
  });

  it('rotates a token: the new one shown once, the old one ended or kept for the grace', async () => {
    await page.getByLabel('Show revoked and expired tokens').uncheck();
    await page.getByLabel('Name').fill('rotate-me');
    await page.getByRole('button', { name: 'Proceed' }).click();
    await page.locator('#new-token').waitFor();
    const old = await page.getByLabel(/^Token/).inputValue();
    await page.getByRole('button', { name: 'I have copied it' }).click();
    const row = page.locator('#tokens tbody tr', { hasText: 'rotate-me' });
    const dialog = page.getByRole('dialog', { name: 'Rotate this token?' });

    // No grace: the old token is refused at once.
    await row.getByRole('button', { name: 'Rotate token rotate-me' }).click();
    await dialog.waitFor();
    await dialog.getByLabel('The old token keeps working for').selectOption('0');
    await dialog.getByRole('button', { name: 'Rotate' }).click();
    await page.getByText('Token "rotate-me" rotated. The old one is refused from now on.').waitFor();
    const fresh = await page.getByLabel(/^Token/).inputValue();
    assert.match(fresh, /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.notEqual(fresh, old);
    const refused = await api('{ me { email } }', { token: old });
    assert.equal(refused.status, 401);
    assert.equal(refused.body.errors[0].extensions.reason, 'revoked');
    assert.equal((await api('{ me { email } }', { token: fresh })).status, 200);
    await page.getByRole('button', { name: 'I have copied it' }).click();
    assert.equal(await page.locator('#tokens tbody tr', { hasText: 'rotate-me' }).count(), 1);

    // An hour's grace: both work meanwhile; rotating the old one again is refused.
    await row.getByRole('button', { name: 'Rotate token rotate-me' }).click();
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Rotate' }).click();
    await page.getByText(/Token "rotate-me" rotated\. The old one keeps working until/).waitFor();
    const third = await page.getByLabel(/^Token/).inputValue();
    assert.notEqual(third, fresh);
    assert.equal((await api('{ me { email } }', { token: fresh })).status, 200);
    assert.equal((await api('{ me { email } }', { token: third })).status, 200);
    await page.getByRole('button', { name: 'I have copied it' }).click();
    // Tidy up for the tests after: no active rotate-me token.
    const cookie = await sessionCookie(context);
    const { body } = await api('{ accessTokens { id name } }', { cookie });
    for (const t of body.data.accessTokens.filter((t) => t.name === 'rotate-me')) {
      await api('mutation($id: ID!) { revokeAccessToken(id: $id) { id } }', { cookie, variables: { id: t.id } });
    }
  });

  it('reads at 400 px', async () => {
    await page.setViewportSize({ width: 400, height: 900 });
    await page.reload();
    await page.getByLabel('Show revoked and expired tokens').check();
    await page.locator('#tokens tbody tr', { hasText: 'browser-ci' }).waitFor();
    await assertNoHorizontalScroll(page);
    await page.screenshot({ path: join(SCREENSHOTS, 'console-400px.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  it('signs out', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${server.url}/login`);
    assert.equal((await context.cookies(server.url)).some((c) => c.name === 'tokengate_session'), false);
    await page.goto(`${server.url}/console`);
    await page.waitForURL(`${server.url}/login?next=/console`);
  });
});

describe('playground', () => {
  let context;
  let page;

  before(async () => {
    context = await newContext();
    page = await context.newPage();
  });
  after(async () => context?.close());

  it('signed in, runs { me { email } } with the session cookie', async () => {
    await signIn(page, '/api');
    const res = await page.reload();
    assert.equal(res.status(), 200);
    assertPageHeaders(res.headers(), { noStore: true });
    await page.locator(QUERY_EDITOR).waitFor();
    const body = await runInPlayground(page, '{ me { email } }', ADMIN_EMAIL);
    assert.deepEqual(body, { data: { me: { email: ADMIN_EMAIL } } });
  });

  it('has a docs explorer, schema-aware completion and history', async () => {
    await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
    const docs = page.locator('.graphiql-doc-explorer');
    await docs.getByRole('link', { name: 'Query', exact: true }).click();
    await docs.getByText('accessTokens', { exact: true }).first().waitFor();

    await setEditor(page, QUERY_EDITOR, '{\n  me {\n    \n  }\n}');
    await page.evaluate((s) => {
      const cm = document.querySelector(s).CodeMirror;
      cm.focus();
      cm.setCursor({ line: 2, ch: 4 });
    }, QUERY_EDITOR);
    await page.keyboard.type('em');
    const hints = page.locator('.CodeMirror-hints');
    await hints.getByText('email', { exact: true }).waitFor();
    await page.keyboard.press('Escape');

    await page.getByRole('button', { name: 'Show History' }).click();
    await page.locator('.graphiql-history-item').first().waitFor();
    await page.getByRole('button', { name: 'Hide History' }).click();
  });

  it('runs a query under a Bearer token from the headers editor', async () => {
    const cookie = await sessionCookie(context);
    const meOnly = await issueToken(cookie, 'me-only', ['me:read']);

    // A browser-ish GET with ?query= is still GraphQL: queries run, mutations get 405.
    const html = { accept: 'text/html', cookie };
    const q = await fetch(`${server.url}/api?query=${encodeURIComponent('{ me { email } }')}`, { headers: html });
    assert.deepEqual(await q.json(), { data: { me: { email: ADMIN_EMAIL } } });
    const m = await fetch(`${server.url}/api?query=${encodeURIComponent('mutation { revokeAccessToken(id: "x") { id } }')}`, { headers: html });
    assert.equal(m.status, 405);
    assert.equal(m.headers.get('allow'), 'POST');

    // With the cookie alone the session holds tokens:read …
    const asSession = await runInPlayground(page, '{ accessTokens { name } }', 'me-only');
    assert.deepEqual(asSession.data.accessTokens.map((t) => t.name), ['me-only']);

    // … with the header the token (me:read only) is the credential.
    await page.locator('button[data-name="headers"]').click();
    await page.locator(HEADERS_EDITOR).waitFor();
    await setEditor(page, HEADERS_EDITOR, JSON.stringify({ Authorization: `Bearer ${meOnly}` }, null, 2));
    const asToken = await runInPlayground(page, '{ me { email } accessTokens { id } }', 'FORBIDDEN');
    assert.deepEqual(asToken.data, { me: { email: ADMIN_EMAIL }, accessTokens: null });
    assert.equal(asToken.errors[0].extensions.code, 'FORBIDDEN');
    assert.equal(asToken.errors[0].extensions.requiredScope, 'tokens:read');

    // History and tabs are in localStorage: the token must not be.
    await page.waitForTimeout(1000);
    const stored = await page.evaluate(() => JSON.stringify(localStorage));
    assert.ok(stored.includes('accessTokens { id }'), 'the query is in the stored history');
    assert.equal(stored.includes(meOnly), false, 'no token in localStorage');

    await setEditor(page, HEADERS_EDITOR, '');

    // The seed flow in the playground: the issued token is shown, but the stored
    // tabs keep no response, so it never reaches disk.
    const exp2 = Math.floor(Date.now() / 1000) + 600;
    const made = await runInPlayground(
      page,
      `mutation { updateAccessToken(expirationTime: ${exp2}, name: "from-playground", scopes: ["me:read"]) { sessionJwt } }`,
      'sessionJwt',
    );
    const shown = made.data.updateAccessToken.sessionJwt;
    assert.ok(shown.length > 100);
    await page.waitForTimeout(1000);
    const storedAfter = await page.evaluate(() => JSON.stringify(localStorage));
    assert.equal(storedAfter.includes(shown), false, 'no issued token in localStorage');

    await runInPlayground(page, '{\n  me {\n    email\n    role\n  }\n}', ADMIN_EMAIL);
    await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
    await page.locator('.graphiql-doc-explorer').getByText('AccessToken', { exact: true }).first().waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'playground.png') });
  });
});

describe('playground at 400 px', () => {
  it('stacks its panes and still runs a query', async () => {
    const context = await newContext({ viewport: { width: 400, height: 800 } });
    const page = await context.newPage();
    await signIn(page, '/api');
    await page.locator(QUERY_EDITOR).waitFor();
    await assertNoHorizontalScroll(page);
    const body = await runInPlayground(page, '{ me { email } }', ADMIN_EMAIL);
    assert.equal(body.data.me.email, ADMIN_EMAIL);
    await page.locator('.graphiql-response').scrollIntoViewIfNeeded();
    assert.ok(await page.locator('.graphiql-response').isVisible());
    await context.close();
  });
});

describe('playground with a token and no session', () => {
  it('runs { me { email } } under a Bearer header from the headers editor, no cookie sent', async () => {
    // The token comes from outside the browser, as a colleague's or a service's would.
    const token = await issueToken(await signInOverHttp(), 'pg', ['me:read']);

    const context = await newContext();
    const apiCalls = []; // every request the page made to /api
    context.on('request', (r) => {
      if (new URL(r.url()).pathname === '/api') apiCalls.push(r);
    });
    const page = await context.newPage();
    const res = await page.goto(`${server.url}/api`);
    assert.equal(res.status(), 200);
    const notice = signedOutNotice(page);
    await notice.waitFor();
    assert.equal(await notice.getByRole('link', { name: 'sign in', exact: true }).getAttribute('href'), '/login?next=/api');
    await page.locator(QUERY_EDITOR).waitFor();
    // The notice sits above GraphiQL, in the page flow: it covers none of it.
    const noticeBox = await notice.boundingBox();
    const ideBox = await page.locator('#graphiql').boundingBox();
    assert.ok(noticeBox.height > 0 && noticeBox.y + noticeBox.height <= ideBox.y + 1, 'the notice is above the editor');
    // Signed out, the headers editor is the open tool.
    await page.locator(HEADERS_EDITOR).waitFor();
    await page.screenshot({ path: join(SCREENSHOTS, 'playground-signed-out.png') });

    // No credential: the API's own 401, shown in the result pane.
    const refused = await runInPlayground(page, '{ me { email } }', 'UNAUTHENTICATED');
    assert.equal(refused.errors[0].extensions.reason, 'missing');

    // The header in the headers editor: the schema loads with it (docs explorer) …
    await setEditor(page, HEADERS_EDITOR, JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2));
    await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
    const docs = page.locator('.graphiql-doc-explorer');
    await docs.getByRole('link', { name: 'Query', exact: true }).click();
    await docs.getByText('accessTokens', { exact: true }).first().waitFor();

    // … and queries run as the token: me:read answers, tokens:read is refused.
    const me = await runInPlayground(page, '{ me { email } }', ADMIN_EMAIL);
    assert.deepEqual(me, { data: { me: { email: ADMIN_EMAIL } } });
    const list = await runInPlayground(page, '{ accessTokens { id } }', 'FORBIDDEN');
    assert.equal(list.data.accessTokens, null);
    assert.equal(list.errors[0].extensions.requiredScope, 'tokens:read');

    // No request carried a cookie; the introspection and the queries carried the token.
    assert.deepEqual(await context.cookies(server.url), []);
    let withCookie = 0;
    let introspections = 0;
    let queries = 0;
    for (const r of apiCalls) {
      const headers = await r.allHeaders();
      if ('cookie' in headers) withCookie++;
      if (r.method() !== 'POST' || headers.authorization !== `Bearer ${token}`) continue;
      if (r.postData().includes('__schema')) introspections++;
      else queries++;
    }
    assert.equal(withCookie, 0, 'no request to /api carried a cookie');
    assert.ok(introspections >= 1, 'the schema was fetched with the Authorization header');
    assert.ok(queries >= 2, 'the queries were sent with the Authorization header');

    // The token is nowhere in the browser's storage.
    await page.waitForTimeout(1000);
    const stored = await page.evaluate(() => JSON.stringify(localStorage));
    assert.equal(stored.includes(token), false, 'no token in localStorage');
    await context.close();
  });
});

describe('offline', () => {
  it('no request went to any host but the server', () => {
    const origin = new URL(server.url).origin;
    assert.ok(requests.length > 10, `recorded ${requests.length} requests`);
    const elsewhere = requests.filter((u) => !u.startsWith('data:') && !u.startsWith('blob:') && new URL(u).origin !== origin);
    assert.deepEqual(elsewhere, []);
  });

  it('no script error or CSP violation on any page', () => {
    assert.deepEqual(problems, []);
  });
});
