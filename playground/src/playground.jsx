// The GraphQL playground served at GET /api (bundled by build.mjs into dist/).
// Everything it needs is in this bundle: no CDN, no external font.
import React from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import 'graphiql/graphiql.css';

const ENDPOINT = '/api';

const DEFAULT_QUERY = `# tokengate API playground.
#
# Requests carry your session cookie, so they run as you. To run one as a token
# instead, open "Headers" below and put:
#   { "Authorization": "Bearer <token>" }
# Ctrl-Enter runs the query; Ctrl-Space completes; the book icon opens the docs.

{
  me {
    email
    role
  }
}
`;

// tokengate refuses documents nested deeper than 12 levels, and graphql-js's
// standard introspection query nests its TypeRef fragment 8 `ofType`s deep
// (14 levels). The fetcher swaps that fragment for one 6 deep (12 levels):
// enough for any type of this schema, whose deepest is [String!]! (3).
const TYPE_REF = 'fragment TypeRef on __Type';
function withShallowTypeRef(query) {
  const at = typeof query === 'string' ? query.indexOf(TYPE_REF) : -1;
  if (at < 0 || !query.includes('__schema')) return query;
  let ref = 'kind name';
  for (let i = 0; i < 6; i++) ref = `kind name ofType { ${ref} }`;
  return `${query.slice(0, at)}${TYPE_REF} { ${ref} }\n`;
}

// POSTs to /api as JSON with the session cookie (credentials: "include"); the
// headers editor's headers are added, so an Authorization header wins over the
// cookie on the server.
async function fetcher(params, opts) {
  const headers = { accept: 'application/json' };
  for (const [name, value] of Object.entries((opts && opts.headers) || {})) {
    headers[name] = String(value);
  }
  headers['content-type'] = 'application/json';
  const response = await fetch(ENDPOINT, {
    method: 'POST',
    credentials: 'include',
    headers,
    body: JSON.stringify({ ...params, query: withShallowTypeRef(params.query) }),
  });
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return { errors: [{ message: `HTTP ${response.status}: ${text.slice(0, 500)}` }] };
  }
}

// GraphiQL keeps its tabs and history in localStorage. Headers are left out of
// the tabs (shouldPersistHeaders is off, and its setting hidden), but history
// entries carry them, so an Authorization header would leave a token on disk;
// tabs also keep the last response, which holds the token after
// updateAccessToken. This storage drops `headers` and `response` from
// everything GraphiQL writes.
const NOT_STORED = new Set(['headers', 'response']);
function withoutHeaders(value) {
  if (Array.isArray(value)) return value.map(withoutHeaders);
  if (value && typeof value === 'object') {
    const copy = {};
    for (const [k, v] of Object.entries(value)) if (!NOT_STORED.has(k)) copy[k] = withoutHeaders(v);
    return copy;
  }
  return value;
}
const NAMESPACE = 'graphiql:';
const storage = {
  getItem: (key) => localStorage.getItem(key),
  setItem(key, value) {
    let cleaned = value;
    try {
      cleaned = JSON.stringify(withoutHeaders(JSON.parse(value)));
    } catch {
      // not JSON: stored as it is
    }
    localStorage.setItem(key, cleaned);
  },
  removeItem: (key) => localStorage.removeItem(key),
  get length() {
    return Object.keys(localStorage).filter((k) => k.startsWith(NAMESPACE)).length;
  },
  clear() {
    for (const key of Object.keys(localStorage)) if (key.startsWith(NAMESPACE)) localStorage.removeItem(key);
  },
};

function Playground() {
  return (
    <GraphiQL
      fetcher={fetcher}
      storage={storage}
      shouldPersistHeaders={false}
      defaultQuery={DEFAULT_QUERY}
      defaultEditorToolsVisibility="variables"
    >
      <GraphiQL.Logo>
        <a href="/console" className="tg-logo">tokengate</a>
      </GraphiQL.Logo>
    </GraphiQL>
  );
}

createRoot(document.getElementById('graphiql')).render(<Playground />);
