// The token console (GET /console). Plain script, no dependencies, no inline
// code (the page's CSP allows scripts from 'self' only). It talks to the same
// GraphQL API as every other client: POST /api, JSON, with the session cookie;
// and it keeps the list current over a WebSocket to /api (graphql-transport-ws,
// spoken by hand below), so tokens made or revoked elsewhere show up at once.
'use strict';

(function () {
  const root = document.getElementById('console');
  if (!root) return;
  const maxLifetime = Number(root.dataset.maxLifetimeSeconds);
  const allowNever = root.dataset.allowNonExpiring === 'true';
  const $ = (id) => document.getElementById(id);
  const statusBox = $('status');
  const form = $('generate-form');
  const nameInput = $('token-name');
  const expiryInput = $('token-expiry');
  const neverInput = $('token-never');
  const generateError = $('generate-error');
  const generateButton = $('generate');
  const newTokenBox = $('new-token');
  const newTokenValue = $('new-token-value');
  const copyStatus = $('copy-status');
  const tbody = document.querySelector('#tokens tbody');
  const showInactive = $('show-inactive');
  const dialog = $('revoke-dialog');
  const operationInput = $('scopes-operation');
  const operationButton = $('scopes-from-operation');
  let tokens = [];

  class ApiError extends Error {
    constructor(message, code) {
      super(message);
      this.code = code;
    }
  }

  async function graphql(query, variables) {
    let response;
    try {
      response = await fetch('/api', {
        method: 'POST',
        credentials: 'include',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ query, variables }),
      });
    } catch (e) {
      throw new ApiError('The server cannot be reached. Check your connection and try again.');
    }
    let body;
    try {
      body = await response.json();
    } catch (e) {
      throw new ApiError(`The server answered ${response.status} without a GraphQL response.`);
    }
    if (body.errors && body.errors.length) {
      const first = body.errors[0];
      const code = first.extensions && first.extensions.code;
      throw new ApiError(first.message, code);
    }
    return body.data;
  }

  // detail: more lines, shown as they are (a parser's pointer to a column).
  function showStatus(message, kind, detail) {
    statusBox.replaceChildren();
    if (!message) return;
    const p = document.createElement('p');
    p.className = kind === 'error' ? 'error' : '';
    p.textContent = message;
    if (kind === 'signin') {
      p.className = 'error';
      p.append(' ');
      const a = document.createElement('a');
      a.href = '/login?next=/console';
      a.textContent = 'Sign in again';
      p.append(a);
    }
    statusBox.append(p);
    if (detail) {
      const pre = document.createElement('pre');
      pre.className = 'status-detail';
      pre.textContent = detail;
      statusBox.append(pre);
    }
  }

  function reportError(e) {
    if (e instanceof ApiError && e.code === 'UNAUTHENTICATED') {
      showStatus('Your session has ended.', 'signin');
    } else {
      showStatus(e.message || String(e), 'error');
    }
  }

  // Dates: the picker works in the browser's local calendar.
  const pad = (n) => String(n).padStart(2, '0');
  const isoDate = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const formatter = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const show = (iso) => (iso ? formatter.format(new Date(iso)) : '—');

  function latestExpiry() {
    return new Date(Date.now() + maxLifetime * 1000);
  }

  function setUpExpiry() {
    const today = new Date();
    const latest = latestExpiry();
    const tomorrow = new Date(today.getFullYear(), today.getMonth(), today.getDate() + 1);
    expiryInput.min = isoDate(tomorrow < latest ? tomorrow : today);
    expiryInput.max = isoDate(latest);
    const thirty = new Date(today.getFullYear(), today.getMonth(), today.getDate() + 30);
    expiryInput.value = isoDate(thirty < latest ? thirty : latest);
    const days = Math.floor(maxLifetime / 86400);
    $('token-expiry-hint').textContent =
      `At most ${days} day${days === 1 ? '' : 's'} from now (until ${isoDate(latest)}).` +
      ' The token stops working at the end of that day.';
  }

  // Unix seconds for the chosen day: the end of that local day, capped at the
  // configured maximum (less a minute, for the trip to the server).
  function expirationTime() {
    const [y, m, d] = expiryInput.value.split('-').map(Number);
    const endOfDay = new Date(y, m - 1, d, 23, 59, 59);
    const cap = Math.floor(Date.now() / 1000) + maxLifetime - 60;
    return Math.min(Math.floor(endOfDay.getTime() / 1000), cap);
  }

  function cell(text, label) {
    const td = document.createElement('td');
    td.textContent = text;
    if (label) td.dataset.label = label;
    return td;
  }

  // The button (`Revoke` or `Rotate`) of the token `id` as the list is now
  // (a refresh replaces the rows).
  const buttonFor = (id, action = 'Revoke') => {
    const tr = [...tbody.querySelectorAll('tr[data-token-id]')].find((r) => r.dataset.tokenId === id);
    return (tr && [...tr.querySelectorAll('button')].find((b) => b.textContent === action)) || null;
  };
  const revokeButtonFor = (id) => buttonFor(id, 'Revoke');

  // Redraws the list. The keyboard focus, when it was on a row's button, goes
  // back to the same button of that token; when that token left the list
  // (revoked elsewhere), to the "show revoked" checkbox just above it.
  function render() {
    const active = document.activeElement;
    const focused = tbody.contains(active) ? active.closest('tr') : null;
    const focusedId = focused ? focused.dataset.tokenId : null;
    const action = focused ? active.textContent : null;
    fillRows();
    if (focusedId) (buttonFor(focusedId, action) || showInactive).focus();
  }

  function fillRows() {
    tbody.replaceChildren();
    if (!tokens.length) {
      const tr = document.createElement('tr');
      const td = cell(showInactive.checked ? 'You have no tokens.' : 'You have no active tokens.');
      td.colSpan = 7;
      tr.append(td);
      tbody.append(tr);
      return;
    }
    for (const t of tokens) {
      const tr = document.createElement('tr');
      tr.dataset.tokenId = t.id;
      tr.append(
        cell(t.name, 'Name'),
        cell(t.scopes.join(' '), 'Scopes'),
        cell(show(t.createdAt), 'Created'),
        cell(t.expiresAt ? show(t.expiresAt) : 'never', 'Expires'),
        cell(t.lastUsedAt ? show(t.lastUsedAt) + (t.lastUsedIp ? ` from ${t.lastUsedIp}` : '') : 'never', 'Last used'),
      );
      const status = cell(t.status.toLowerCase(), 'Status');
      status.className = `status-${t.status}`;
      tr.append(status);
      const actions = document.createElement('td');
      if (t.status === 'ACTIVE') {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'danger';
        b.textContent = 'Revoke';
        b.setAttribute('aria-label', `Revoke token ${t.name}`);
        b.addEventListener('click', () => confirmRevoke(t, b));
        const r = document.createElement('button');
        r.type = 'button';
        r.className = 'secondary';
        r.textContent = 'Rotate';
        r.setAttribute('aria-label', `Rotate token ${t.name}`);
        r.addEventListener('click', () => confirmRotate(t, r));
        actions.append(r, ' ', b);
      }
      tr.append(actions);
      tbody.append(tr);
    }
  }

  // Loads and shows the list; resolves to the error, if any. Only the latest
  // of overlapping loads (a live refresh, the checkbox, a generate) is shown.
  let loads = 0;
  async function load() {
    const mine = ++loads;
    try {
      const data = await graphql(
        `query Console($all: Boolean!) {
          me { email role }
          accessTokens(includeInactive: $all) { id name scopes createdAt expiresAt lastUsedAt lastUsedIp revokedAt status }
        }`,
        { all: showInactive.checked },
      );
      if (mine !== loads) return null;
      $('whoami').textContent = `Signed in as ${data.me.email}`;
      tokens = data.accessTokens;
      render();
      return null;
    } catch (e) {
      if (mine !== loads) return e;
      tbody.replaceChildren();
      reportError(e);
      return e;
    }
  }

  function fail(message, field) {
    generateError.textContent = message;
    generateError.hidden = false;
    if (field) {
      field.setAttribute('aria-invalid', 'true');
      field.focus();
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    generateError.hidden = true;
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    const name = nameInput.value.trim();
    if (!name) return fail('Give the token a name, such as "ci-deploy".', nameInput);
    const never = allowNever && neverInput && neverInput.checked;
    let exp = null;
    if (!never) {
      if (!expiryInput.value) return fail('Choose an expiry date.', expiryInput);
      if (expiryInput.value > expiryInput.max) {
        return fail(`Choose a date no later than ${expiryInput.max}.`, expiryInput);
      }
      exp = expirationTime();
      if (exp <= Date.now() / 1000) return fail('Choose a date in the future.', expiryInput);
    }
    const scopes = [...form.querySelectorAll('input[name="scope"]:checked')].map((c) => c.value);
    if (!scopes.length) return fail('Choose at least one scope.', form.querySelector('input[name="scope"]'));
    generateButton.disabled = true;
    try {
      const data = await graphql(
        `mutation Generate($exp: Int, $name: String!, $scopes: [String!]) {
          updateAccessToken(expirationTime: $exp, name: $name, scopes: $scopes) {
            sessionJwt
            accessToken { id name expiresAt }
          }
        }`,
        { exp, name, scopes },
      );
      const issued = data.updateAccessToken;
      // The token lives in this textarea only: it is not stored anywhere and a
      // reload (the page is never cached) loses it.
      newTokenValue.value = issued.sessionJwt;
      $('new-token-name').textContent = `"${issued.accessToken.name}"`;
      copyStatus.textContent = '';
      newTokenBox.hidden = false;
      form.reset();
      setUpExpiry();
      showStatus(`Token "${issued.accessToken.name}" created.`);
      $('new-token-title').focus();
      newTokenBox.scrollIntoView({ block: 'nearest' });
      await load();
    } catch (e) {
      if (e instanceof ApiError && e.code === 'UNAUTHENTICATED') reportError(e);
      else fail(e.message);
    } finally {
      generateButton.disabled = false;
    }
  });

  $('copy-token').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(newTokenValue.value);
      copyStatus.textContent = 'Copied to the clipboard.';
    } catch (e) {
      newTokenValue.focus();
      newTokenValue.select();
      copyStatus.textContent = 'Select-all is done: press Ctrl-C (⌘-C) to copy.';
    }
  });

  $('dismiss-token').addEventListener('click', () => {
    newTokenValue.value = '';
    newTokenBox.hidden = true;
    nameInput.focus();
  });

  // "Tick the scopes it needs": the server works out the least set of scopes
  // the pasted operation needs (requiredScopes); the checkboxes then hold
  // exactly that set. Nothing changes when the document is invalid or needs a
  // scope the user does not hold.
  const scopeBoxes = () => [...form.querySelectorAll('input[name="scope"]')];
  const listed = (names) =>
    names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;

  async function tickScopesForOperation() {
    operationInput.removeAttribute('aria-invalid');
    const query = operationInput.value;
    if (!query.trim()) {
      showStatus('Paste a GraphQL operation first, such as { me { email } }.', 'error');
      operationInput.setAttribute('aria-invalid', 'true');
      statusBox.scrollIntoView({ block: 'nearest' });
      operationInput.focus();
      return;
    }
    // aria-disabled rather than disabled: a disabled button would lose the
    // keyboard focus.
    operationButton.setAttribute('aria-disabled', 'true');
    try {
      const data = await graphql('query RequiredScopes($q: String!) { requiredScopes(query: $q) }', { q: query });
      const needed = data.requiredScopes;
      const boxes = scopeBoxes();
      const missing = needed.filter((s) => !boxes.some((b) => b.value === s));
      if (missing.length) {
        showStatus(
          `This operation needs ${listed(missing)}, which you do not hold, so no token of yours can run it. ` +
            'The scopes were left as they were.',
          'error',
        );
        return;
      }
      if (!needed.length) {
        showStatus('This operation needs no scope: any token can run it. The scopes were left as they were.');
        return;
      }
      for (const b of boxes) b.checked = needed.includes(b.value);
      showStatus(`Ticked ${listed(needed)} for this operation.`);
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'BAD_USER_INPUT')) return reportError(e);
      operationInput.setAttribute('aria-invalid', 'true');
      if (e.message.includes('\n')) showStatus('That operation cannot be checked:', 'error', e.message);
      else showStatus(`That operation cannot be checked: ${e.message}.`, 'error');
    } finally {
      operationButton.removeAttribute('aria-disabled');
      // The status area is at the top of the page: bring it into view (the
      // checkboxes sit between it and the button). Focus stays on the button.
      statusBox.scrollIntoView({ block: 'nearest' });
    }
  }

  operationButton.addEventListener('click', () => {
    if (operationButton.getAttribute('aria-disabled') !== 'true') tickScopesForOperation();
  });
  operationInput.addEventListener('input', () => operationInput.removeAttribute('aria-invalid'));

  function confirmRevoke(token, button) {
    $('revoke-text').textContent =
      `Programs using "${token.name}" (${token.scopes.join(' ')}) will be refused from their very next request. This cannot be undone.`;
    dialog.returnValue = '';
    dialog.onclose = async () => {
      // The list may have been redrawn meanwhile (a live refresh): the token's
      // button as it is now, else the checkbox above the list.
      (button.isConnected ? button : revokeButtonFor(token.id) || showInactive).focus();
      if (dialog.returnValue !== 'revoke') return;
      try {
        await graphql('mutation Revoke($id: ID!) { revokeAccessToken(id: $id) { id status } }', { id: token.id });
        showStatus(`Token "${token.name}" revoked.`);
        await load();
      } catch (e) {
        reportError(e);
      }
    };
    dialog.showModal();
  }

  // Rotate: a new token with the same name, scopes and length of life, shown
  // once like a generated one; the old one keeps working for the chosen grace.
  const rotateDialog = $('rotate-dialog');
  function confirmRotate(token, button) {
    $('rotate-text').textContent =
      `A new token named "${token.name}" (${token.scopes.join(' ')}) replaces this one and is shown once. ` +
      'Programs using the old token must switch to the new one before it stops working.';
    rotateDialog.returnValue = '';
    $('rotate-grace').value = '3600';
    rotateDialog.onclose = async () => {
      if (rotateDialog.returnValue !== 'rotate') {
        (button.isConnected ? button : buttonFor(token.id, 'Rotate') || showInactive).focus();
        return;
      }
      const grace = Number($('rotate-grace').value);
      try {
        const data = await graphql(
          `mutation Rotate($id: ID!, $grace: Int) {
            rotateAccessToken(id: $id, gracePeriod: $grace) { sessionJwt accessToken { id name } }
          }`,
          { id: token.id, grace },
        );
        const rotated = data.rotateAccessToken;
        newTokenValue.value = rotated.sessionJwt;
        $('new-token-name').textContent = `"${rotated.accessToken.name}"`;
        copyStatus.textContent = '';
        newTokenBox.hidden = false;
        const until = grace
          ? `The old one keeps working until ${formatter.format(new Date(Date.now() + grace * 1000))}.`
          : 'The old one is refused from now on.';
        showStatus(`Token "${rotated.accessToken.name}" rotated. ${until}`);
        $('new-token-title').focus();
        newTokenBox.scrollIntoView({ block: 'nearest' });
        await load();
      } catch (e) {
        (button.isConnected ? button : buttonFor(token.id, 'Rotate') || showInactive).focus();
        reportError(e);
      }
    };
    rotateDialog.showModal();
  }

  showInactive.addEventListener('change', load);
  nameInput.addEventListener('input', () => {
    const taken = tokens.some((t) => t.status === 'ACTIVE' && t.name === nameInput.value.trim());
    $('token-name-hint').textContent = taken
      ? `An active token is named "${nameInput.value.trim()}": generating replaces (revokes) it.`
      : 'Generating a token under the name of an active token replaces (revokes) that token.';
  });
  if (neverInput) {
    neverInput.addEventListener('change', () => {
      expiryInput.disabled = neverInput.checked;
    });
  }

  // Live updates: a subscription to accessTokenEvents over a WebSocket to /api,
  // speaking graphql-transport-ws by hand (connection_init, connection_ack,
  // subscribe; pong to the server's pings). Each event refreshes the list
  // through load(), a burst of them once. The socket is same-origin and
  // carries the session cookie. The server closes it with 4403 when the session
  // ends (4401 if it had already ended on a reconnect): the status line says
  // so, and nothing retries. Any other close retries quietly, backing off; an
  // error for the operation itself (no tokens:read) stops for good.
  const LIVE_QUERY = 'subscription { accessTokenEvents { kind token { id } } }';
  const BACKOFF_MS = [1000, 2000, 5000, 10000, 30000];
  const REFRESH_DELAY_MS = 200;

  function startLive() {
    const scopes = (root.dataset.scopes || '').split(' ');
    if (!scopes.includes('tokens:read') || typeof WebSocket !== 'function') return;
    const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api`;
    let socket = null;
    let failures = 0; // closes since the last connection_ack
    let everAcked = false;
    let stopped = false;
    let refreshTimer = null;
    let retryTimer = null;

    function refreshSoon() {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => {
        refreshTimer = null;
        if (!stopped) load();
      }, REFRESH_DELAY_MS);
    }

    function stop() {
      stopped = true;
      clearTimeout(refreshTimer);
      clearTimeout(retryTimer);
      if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
    }

    function sessionEnded() {
      if (stopped) return;
      stop();
      showStatus('Your session has ended.', 'signin');
    }

    const unauthenticated = (errors) =>
      Array.isArray(errors) && errors.some((e) => e && e.extensions && e.extensions.code === 'UNAUTHENTICATED');

    function connect() {
      retryTimer = null;
      if (stopped) return;
      let ws;
      try {
        ws = new WebSocket(url, 'graphql-transport-ws');
      } catch (e) {
        retry();
        return;
      }
      socket = ws;
      const send = (message) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
      };
      ws.addEventListener('open', () => send({ type: 'connection_init' }));
      ws.addEventListener('message', (event) => {
        let m;
        try {
          m = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        switch (m && m.type) {
          case 'connection_ack':
            // Back after a drop: changes may have been missed meanwhile.
            if (everAcked) refreshSoon();
            everAcked = true;
            failures = 0;
            send({ type: 'subscribe', id: 'events', payload: { query: LIVE_QUERY } });
            break;
          case 'ping':
            send({ type: 'pong' });
            break;
          case 'next': {
            if (m.id !== 'events') break;
            const payload = m.payload || {};
            if (payload.data && payload.data.accessTokenEvents) refreshSoon();
            else if (unauthenticated(payload.errors)) sessionEnded();
            // A field error and no data (FORBIDDEN: no tokens:read): complete follows.
            else if (payload.errors && payload.errors.length) stop();
            break;
          }
          case 'error':
            // The session ended: the 4403 close follows this. Anything else
            // (the operation refused) will not get better by retrying.
            if (unauthenticated(m.payload)) sessionEnded();
            else stop();
            break;
          case 'complete':
            stop();
            break;
          default:
            break;
        }
      });
      ws.addEventListener('close', (event) => {
        if (socket === ws) socket = null;
        if (event.code === 4403 || event.code === 4401) sessionEnded();
        else retry();
      });
    }

    function retry() {
      if (stopped || retryTimer) return;
      const delay = BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)];
      failures += 1;
      retryTimer = setTimeout(connect, delay);
    }

    // Signing out from this page: the socket's end is expected, not news.
    const signOut = $('sign-out');
    if (signOut && signOut.form) signOut.form.addEventListener('submit', stop);
    connect();
  }

  setUpExpiry();
  load().then((e) => {
    if (!(e instanceof ApiError && e.code === 'UNAUTHENTICATED')) startLive();
  });
})();
