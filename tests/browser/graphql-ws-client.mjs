// The `graphql-ws` client as the suite uses it: upgrade headers through `ws`,
// connection errors observed through the close events, subscriptions as
// promises.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

/** A graphql-ws client; `headers` go on the upgrade request, `init` into connection_init. */
export function connect(base, { headers, init } = {}) {
  const closes = [];
  class WithHeaders extends WebSocket {
    constructor(address, protocols) {
      super(address, protocols, { headers });
    }
  }
  const client = createClient({
    url: `${base.replace(/^http/, 'ws')}/api`,
    webSocketImpl: WithHeaders,
    lazy: false,
    retryAttempts: 0,
    connectionParams: init,
    on: { closed: (event) => closes.push(event) },
    // Connection errors are asserted on through `closes`; graphql-ws would also print them.
    onNonLazyError: () => {},
  });
  client.closes = closes;
  client.closed = () =>
    new Promise((resolve) => {
      if (closes.length) return resolve(closes[0]);
      const stop = client.on('closed', (event) => {
        stop();
        resolve(event);
      });
    });
  return client;
}

/** Subscribes; returns { next(): Promise<value>, errors: Promise<error>, done: Promise }. */
export function subscribe(client, query) {
  const values = [];
  const waiters = [];
  let fail;
  let finish;
  const errors = new Promise((resolve) => (fail = resolve));
  const done = new Promise((resolve) => (finish = resolve));
  client.subscribe(
    { query },
    {
      next: (v) => {
        const w = waiters.shift();
        if (w) w(v);
        else values.push(v);
      },
      error: (e) => fail(e),
      complete: () => finish(),
    },
  );
  return {
    next: () => (values.length ? Promise.resolve(values.shift()) : new Promise((r) => waiters.push(r))),
    errors,
    done,
  };
}

