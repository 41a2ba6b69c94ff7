// The GraphQL playground served at GET /api (bundled by build.mjs into dist/).
// Everything it needs is in this bundle: no CDN, no external font.
import React, { useCallback, useMemo, useRef, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import 'graphiql/graphiql.css';

const ENDPOINT = '/api';

// The server tells whether this page was loaded with a session (no inline
// script under the CSP: a data attribute). Signed out, a notice above the
// editor (server-rendered) says so, and a token in the headers editor is the
// only credential.
const ROOT = document.getElementById('graphiql');
const SIGNED_IN = ROOT.dataset.signedIn === 'true';

const QUERY_BODY = `
{
  me {
    email
    role
  }
}
`;
const DEFAULT_QUERY = SIGNED_IN
  ? `# tokengate API playground.
#
# Requests carry your session cookie, so they run as you. To run one as a token
# instead, open "Headers" below and put:
#   { "Authorization": "Bearer <token>" }
# Ctrl-Enter runs the query; Ctrl-Space completes; the book icon opens the docs.
${QUERY_BODY}`
  : `# tokengate API playground. Not signed in, so
# requests carry no session. To run queries as
# a token, open "Headers" below and put:
#   { "Authorization": "Bearer <token>" }
# The schema (completion, docs) then loads.
# Or sign in (link above) to run them as you.
# Ctrl-Enter runs; Ctrl-Space completes.
${QUERY_BODY}`;

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
// cookie on the server. Signed out, the header is the only credential.
async function fetchApi(params, opts) {
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

// The Authorization value in the headers editor's JSON once it looks like a
// whole `Bearer <token>`; '' otherwise (no header, or JSON still being typed).
function bearerIn(headersText) {
  try {
    const headers = JSON.parse(headersText || '{}');
    if (headers && typeof headers === 'object') {
      for (const [name, value] of Object.entries(headers)) {
        if (name.toLowerCase() === 'authorization' && /^bearer\s+\S+$/i.test(String(value).trim())) {
          return String(value).trim();
        }
      }
    }
  } catch {
    // not JSON (yet)
  }
  return '';
}

// Signed in, GraphiQL introspects once on load with the cookie. Signed out
// there is nothing to introspect with until a token is in the headers editor:
// GraphiQL is told there is no schema (schema={null}, so it sends no request
// bound to fail), and, as GraphiQL 3 introspects only on load, on a new
// fetcher, or on the "Re-fetch GraphQL schema" button, each new Bearer value
// gets a new fetcher, which makes GraphiQL introspect again with the headers
// now in the editor. The value is kept in memory only, never stored.
function usePlaygroundFetcher() {
  const [bearer, setBearer] = useState('');
  const timer = useRef(undefined);
  // A new function for each new Bearer value (the value itself is not used:
  // the headers reach the fetcher from GraphiQL, as for every request).
  const fetcher = useMemo(() => (params, opts) => fetchApi(params, opts), [bearer]);
  const onEditHeaders = useCallback((text) => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => {
      const value = bearerIn(text);
      if (value) setBearer(value);
    }, 300);
  }, []);
  if (SIGNED_IN) return { fetcher: fetchApi };
  return { fetcher, onEditHeaders, schema: bearer ? undefined : null };
}

function Playground() {
  const { fetcher, onEditHeaders, schema } = usePlaygroundFetcher();
  return (
    <GraphiQL
      fetcher={fetcher}
      schema={schema}
      onEditHeaders={onEditHeaders}
      storage={storage}
      shouldPersistHeaders={false}
      defaultQuery={DEFAULT_QUERY}
      defaultEditorToolsVisibility={SIGNED_IN ? 'variables' : 'headers'}
    >
      <GraphiQL.Logo>
        <a href="/console" className="tg-logo">tokengate</a>
      </GraphiQL.Logo>
    </GraphiQL>
  );
}

createRoot(ROOT).render(<Playground />);
