// The bookstore example (tokengate plus an application's own fields and scopes)
// in a real browser: the console shows the application's scopes, works out the
// scopes an operation needs, and the token it mints runs exactly that. Run with
// `node --test` here.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chromium } from 'playwright-core';

import { connect, subscribe } from './graphql-ws-client.mjs';
import { ADMIN_EMAIL, ADMIN_PASSWORD, binary, startServer } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const MEMBER_EMAIL = 'mel@example.com';
const MEMBER_PASSWORD = 'a-member-of-the-bookstore';

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
    if (m.type() === 'error') problems.push(`console error on ${page.url()}: ${m.text()}`);
  });
}

async function signIn(page, next, email = ADMIN_EMAIL, password = ADMIN_PASSWORD) {
  await page.goto(`${server.url}/login?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
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
  return `${c.name}=${c.value}`;
}

async function assertEveryInputLabelled(page) {
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll('input:not([type=hidden]), textarea, select')]
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
      .map((el) => el.id || el.name || el.outerHTML.slice(0, 60)),
  );
  assert.deepEqual(unlabelled, []);
}

/** No element wider than the viewport: the page reads at this width. */
async function assertNoHorizontalScroll(page) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  assert.ok(scroll <= width, `page is ${scroll}px wide in a ${width}px window`);
}

/** The values of the ticked scope checkboxes, in page order. */
const ticked = (page) =>
  page.evaluate(() => [...document.querySelectorAll('input[name="scope"]:checked')].map((c) => c.value));

/** Pastes `operation` into the operation box and presses "Tick the scopes it needs". */
async function tickFor(page, operation) {
  await page.getByLabel('Operation', { exact: true }).fill(operation);
  await page.getByRole('button', { name: 'Tick the scopes it needs' }).click();
}

const status = (page) => page.locator('#status');

before(async () => {
  server = await startServer({ app: 'bookstore' });
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

describe('bookstore schema', () => {
  it('`schema` prints the SDL with the application fields and their @requiresScopes', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'bookstore-schema-'));
    try {
      const run = spawnSync(binary('bookstore'), ['schema'], {
        cwd,
        encoding: 'utf8',
        env: { ...process.env, TOKENGATE_LOG: 'warn' },
      });
      assert.equal(run.status, 0, run.stderr);
      assert.ok(
        run.stdout.includes('books: [Book!]! @requiresScopes(scopes: [["books:read"]])'),
        'books carries @requiresScopes books:read',
      );
      assert.ok(
        run.stdout.includes('addBook(title: String!): Book! @requiresScopes(scopes: [["books:write"]])'),
        'addBook carries @requiresScopes books:write',
      );
      assert.ok(run.stdout.includes('requiredScopes(query: String!, operationName: String): [String!]!'));
      assert.deepEqual(readdirSync(cwd), [], 'printing the schema writes no file');
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe('console on the bookstore (administrator)', () => {
  let context;
  let page;
  let token;

  before(async () => {
    context = await newContext();
    page = await context.newPage();
  });
  after(async () => context?.close());

  it('shows the bookstore scopes with their descriptions', async () => {
    await page.goto(`${server.url}/console`);
    await page.waitForURL(`${server.url}/login?next=/console`);
    await signIn(page, '/console');
    await page.getByText(`Signed in as ${ADMIN_EMAIL}`).waitFor();
    await assertEveryInputLabelled(page);
    const described = {
      'books:read': 'Read the catalogue',
      'books:write': 'Add books to the catalogue',
    };
    for (const [scope, description] of Object.entries(described)) {
      const box = page.getByRole('checkbox', { name: scope, exact: true });
      assert.ok(await box.isVisible(), `${scope} has a checkbox`);
      assert.equal(await box.getAttribute('value'), scope);
      assert.equal(await box.isChecked(), false);
      // The description is on the page and is the checkbox's accessible description.
      const desc = page.locator(`#${await box.getAttribute('aria-describedby')}`);
      assert.equal(await desc.textContent(), description);
      assert.ok(await desc.isVisible(), `the description of ${scope} is visible`);
    }
    assert.deepEqual(await ticked(page), ['me:read']);
  });

  it('ticks exactly the scopes an operation needs', async () => {
    await page.getByRole('checkbox', { name: 'tokens:read', exact: true }).check();
    await tickFor(page, '{ books { title } }');
    await status(page).filter({ hasText: 'Ticked books:read for this operation.' }).waitFor();
    assert.deepEqual(await ticked(page), ['books:read']);
    for (const other of ['me:read', 'books:write', 'tokens:read']) {
      assert.equal(await page.getByRole('checkbox', { name: other, exact: true }).isChecked(), false, other);
    }
    // The keyboard stays where it was; the status at the top of the page is in view.
    assert.equal(await page.evaluate(() => document.activeElement.id), 'scopes-from-operation');
    const box = await status(page).boundingBox();
    assert.ok(box.y >= 0 && box.y + box.height <= page.viewportSize().height, `status at ${box.y}px is in view`);
  });

  it('mints a token with that selection: it reads the catalogue and cannot add to it', async () => {
    // A book to read, added with the session (which holds every scope of the administrator).
    const added = await api('mutation { addBook(title: "Dune") { title } }', { cookie: await sessionCookie(context) });
    assert.deepEqual(added.body, { data: { addBook: { title: 'Dune' } } });

    await page.getByLabel('Name').fill('catalogue-reader');
    await page.getByRole('button', { name: 'Proceed' }).click();
    await page.locator('#new-token').waitFor();
    token = await page.getByLabel(/^Token/).inputValue();
    assert.match(token, /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
    const row = page.locator('#tokens tbody tr', { hasText: 'catalogue-reader' });
    assert.equal(await row.locator('td[data-label="Scopes"]').textContent(), 'books:read');

    const books = await api('{ books { title } }', { token });
    assert.equal(books.status, 200);
    assert.equal(books.body.errors, undefined);
    assert.ok(Array.isArray(books.body.data.books));
    assert.deepEqual(books.body.data.books, [{ title: 'Dune' }]);

    const write = await api('mutation { addBook(title: "x") { id } }', { token });
    assert.equal(write.body.errors[0].extensions.code, 'FORBIDDEN');
    assert.equal(write.body.errors[0].extensions.requiredScope, 'books:write');
    assert.deepEqual((await api('{ books { title } }', { token })).body.data.books, [{ title: 'Dune' }], 'nothing was added');
    // Nor anything else: me:read was unticked.
    const me = await api('{ me { email } }', { token });
    assert.equal(me.body.errors[0].extensions.code, 'FORBIDDEN');
  });

  it('an invalid document: its error shows in the status area and no box changes', async () => {
    await page.getByRole('checkbox', { name: 'books:write', exact: true }).check();
    const before = await ticked(page);
    assert.deepEqual(before, ['me:read', 'books:write']);
    await tickFor(page, '{ books {');
    await status(page).locator('.error').filter({ hasText: 'That operation cannot be checked' }).waitFor();
    assert.match(await status(page).textContent(), /the document does not parse/);
    assert.equal(await page.getByLabel('Operation', { exact: true }).getAttribute('aria-invalid'), 'true');
    assert.deepEqual(await ticked(page), before);

    // An unknown field is refused the same way.
    await tickFor(page, '{ bookz { title } }');
    await status(page).filter({ hasText: 'cannot query field `bookz`' }).waitFor();
    assert.deepEqual(await ticked(page), before);

    // Nothing pasted: said so, the box gets the focus.
    await tickFor(page, '  ');
    await status(page).filter({ hasText: 'Paste a GraphQL operation first' }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'scopes-operation');
    assert.deepEqual(await ticked(page), before);

    // A valid one again clears the mark.
    await tickFor(page, 'mutation { addBook(title: "x") { id title } }');
    await status(page).filter({ hasText: 'Ticked books:write for this operation.' }).waitFor();
    assert.deepEqual(await ticked(page), ['books:write']);
    assert.equal(await page.getByLabel('Operation', { exact: true }).getAttribute('aria-invalid'), null);
  });

  it('reads at 400 px', async () => {
    await page.setViewportSize({ width: 400, height: 900 });
    await page.reload();
    await page.getByText(`Signed in as ${ADMIN_EMAIL}`).waitFor();
    await tickFor(page, '{ books {');
    await status(page).locator('.error').waitFor();
    await assertNoHorizontalScroll(page);
    assert.ok(await page.locator('#scope-books-write-desc').isVisible());
    await page.setViewportSize({ width: 1280, height: 860 });
  });
});

describe('console on the bookstore (member)', () => {
  it('an operation needing a scope the member does not hold: said so, no box changes', async () => {
    const added = server.cli(['user', 'add', '--email', MEMBER_EMAIL], { input: `${MEMBER_PASSWORD}\n` });
    assert.equal(added.status, 0, added.stderr);

    const context = await newContext();
    const page = await context.newPage();
    await signIn(page, '/console', MEMBER_EMAIL, MEMBER_PASSWORD);
    await page.getByText(`Signed in as ${MEMBER_EMAIL}`).waitFor();
    // Members hold the bookstore scopes, not the administrators' users:*.
    for (const s of ['me:read', 'books:read', 'books:write']) {
      await page.getByRole('checkbox', { name: s, exact: true }).waitFor();
    }
    assert.equal(await page.getByRole('checkbox', { name: 'users:read', exact: true }).count(), 0);

    await tickFor(page, '{ books { title } users { email } }');
    await status(page).filter({ hasText: 'needs users:read, which you do not hold' }).waitFor();
    assert.deepEqual(await ticked(page), ['me:read']);

    await tickFor(page, '{ me { email } books { title } }');
    await status(page).filter({ hasText: 'Ticked me:read and books:read for this operation.' }).waitFor();
    assert.deepEqual(await ticked(page), ['me:read', 'books:read']);
    await context.close();
  });
});

describe('bookstore subscription (an application subscription over WebSocket)', () => {
  it('bookAdded pushes each new book to a token with books:read, refuses one without, and ends on revocation', async () => {
    const login = await fetch(`${server.url}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
    });
    const cookie = login.headers.getSetCookie().find((c) => c.startsWith('tokengate_session=')).split(';')[0];
    const gql = async (query, variables, auth = { cookie }) => {
      const headers = { 'content-type': 'application/json', ...auth };
      const res = await fetch(`${server.url}/api`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
      return res.json();
    };
    const mint = async (name, scopes) => {
      const r = await gql(
        'mutation($n: String!, $e: Int, $s: [String!]) { updateAccessToken(name: $n, expirationTime: $e, scopes: $s) { sessionJwt accessToken { id } } }',
        { n: name, e: Math.floor(Date.now() / 1000) + 3600, s: scopes },
      );
      return r.data.updateAccessToken;
    };
    const reader = await mint('ws-reader', ['books:read']);
    const client = connect(server.url, { init: { authorization: `Bearer ${reader.sessionJwt}` } });
    const added = subscribe(client, 'subscription { bookAdded { title } }');
    // Wait until the subscription is running on the server.
    for (let i = 0; i < 100; i++) {
      const m = await (await fetch(`${server.url}/metrics`)).text();
      if (/^tokengate_ws_operations [1-9]/m.test(m)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await gql('mutation { addBook(title: "Middlemarch") { id } }');
    assert.deepEqual(await added.next(), { data: { bookAdded: { title: 'Middlemarch' } } });

    const plain = await mint('ws-plain', ['me:read']);
    const refused = connect(server.url, { init: { authorization: `Bearer ${plain.sessionJwt}` } });
    const forbidden = await subscribe(refused, 'subscription { bookAdded { title } }').next();
    assert.equal(forbidden.errors[0].extensions.code, 'FORBIDDEN');
    assert.equal(forbidden.errors[0].extensions.requiredScope, 'books:read');
    await refused.dispose();

    const closed = client.closed();
    await gql('mutation($id: ID!) { revokeAccessToken(id: $id) { id } }', { id: reader.accessToken.id });
    assert.equal((await closed).code, 4403);
    assert.equal((await added.errors)[0].extensions.reason, 'revoked');
  });
});

describe('bookstore pages', () => {
  it('no script error or CSP violation on any page', () => {
    assert.deepEqual(problems, []);
  });
});
