//! Gateway mode (SPEC §8): an upstream GraphQL server, in any language, behind
//! tokengate's guard. At start (and every `upstream.refresh`, and on SIGHUP)
//! the upstream's root fields are read by introspection; a request naming
//! them is split ([`document`]): tokengate's fields run here, the permitted
//! upstream fields go upstream in one request with a short-lived signed
//! assertion of the caller ([`assertion`]), and the answers are merged in the
//! order asked. A field the caller's scopes do not cover is `null` with
//! FORBIDDEN and never sent.
//!
//! The served schema is composed ([`compose`]) from both sides' introspection:
//! `__schema` and `__type` are answered from it, and it is the SDL.
//!
//! `requiredScopes` reads the composed schema's scope table.
//!
//! An operation wholly the upstream's (one operation, every scope held) is
//! sent as written, and an answer of data alone, with the keys asked, is
//! passed on as the upstream's bytes ([`Answer::Json`]).
//!
//! Queries and mutations sent over the WebSocket are forwarded too; the
//! upstream's subscriptions are not (SPEC §8).

pub mod assertion;
pub mod compose;
pub mod document;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use async_graphql::{Name, Response, ServerError, Value};
use serde_json::json;

use crate::auth::Principal;
use crate::config::Upstream;
use crate::core::Core;
use crate::graphql::{Answer, AppSchema, Forwarder, RequestMeta};
use document::{NotSplit, Side};

/// The largest upstream response read (a bigger one is an UPSTREAM_ERROR).
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// A document as parsed, kept by its text.
struct Parsed {
    doc: async_graphql::parser::types::ExecutableDocument,
    /// It is one operation and what that uses ([`document::Split::self_contained`]).
    self_contained: bool,
}

/// The upstream's root fields, as last read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamRoots {
    /// Its `Query` type's fields.
    pub query: Vec<String>,
    /// Its `Mutation` type's fields.
    pub mutation: Vec<String>,
    /// Its whole `__schema`, as introspected.
    pub schema: serde_json::Value,
}

/// The upstream's schema as last read, and what it takes to serve it: one
/// value, swapped whole, so a request sees one consistent version.
struct Loaded {
    roots: UpstreamRoots,
    /// The served schema (introspection answers, the SDL).
    composed: async_graphql::dynamic::Schema,
    /// Its scope table, for `requiredScopes`.
    policy: crate::graphql::SharedPolicy,
}

impl Loaded {
    fn is_upstream(&self, ty: OperationType, name: &str) -> bool {
        match ty {
            OperationType::Query => self.roots.query.iter().any(|f| f == name),
            OperationType::Mutation => self.roots.mutation.iter().any(|f| f == name),
            OperationType::Subscription => false,
        }
    }
}

#[derive(Default)]
struct State {
    loaded: Option<Arc<Loaded>>,
    /// Why the upstream is not (or no longer) usable; `None` when it is.
    problem: Option<String>,
}

/// What the gateway knows of its upstream, and how it reaches it.
pub struct Gateway {
    config: Upstream,
    /// `config.url`, parsed once (not at every request).
    url: Option<reqwest::Url>,
    client: reqwest::Client,
    local_schema: AppSchema,
    state: RwLock<State>,
    /// Documents parsed before, by their text (clients send the same few):
    /// the split starts from a copy instead of parsing again.
    parsed: moka::sync::Cache<Arc<str>, Arc<Parsed>>,
}

impl Gateway {
    /// A gateway for `config` beside the local schema.
    pub fn new(config: Upstream, local: &AppSchema) -> Arc<Gateway> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(config.timeout)
            .build()
            .expect("the upstream client's settings are valid");
        Arc::new(Gateway {
            url: reqwest::Url::parse(&config.url).ok(),
            config,
            client,
            local_schema: local.clone(),
            // Weighed like the local cache (graphql::limits): ~100 bytes of
            // parsed document per byte of text, at most ~16 MiB.
            parsed: moka::sync::Cache::builder()
                .max_capacity(16 << 20)
                .weigher(|q: &Arc<str>, _| u32::try_from(q.len() * 100 + 512).unwrap_or(u32::MAX))
                .build(),
            state: RwLock::new(State {
                loaded: None,
                problem: Some("the upstream's schema has not been read yet".into()),
            }),
        })
    }

    /// `None` when the upstream's schema is loaded and usable; else why not
    /// (for `/readyz`).
    pub fn problem(&self) -> Option<String> {
        self.state.read().expect("lock").problem.clone()
    }

    fn loaded(&self) -> Option<Arc<Loaded>> {
        self.state.read().expect("lock").loaded.clone()
    }

    /// Reads the upstream's root fields by introspection and, when none
    /// collides with tokengate's, starts using them. A collision is an
    /// error naming the fields; until the next good read the upstream is not
    /// used (tokengate's own fields still are).
    pub async fn refresh(&self, core: &Core) -> Result<(), RefreshError> {
        let outcome = self.load(core).await;
        let mut state = self.state.write().expect("lock");
        match outcome {
            Ok(loaded) => {
                *state = State {
                    loaded: Some(Arc::new(loaded)),
                    problem: None,
                };
                Ok(())
            }
            // Unreachable: the last good read stays in use meanwhile.
            Err(RefreshError::Unreachable(e)) => {
                state.problem = Some(e.clone());
                Err(RefreshError::Unreachable(e))
            }
            Err(RefreshError::Collision(e)) => {
                *state = State {
                    loaded: None,
                    problem: Some(e.clone()),
                };
                Err(RefreshError::Collision(e))
            }
        }
    }

    async fn load(&self, core: &Core) -> Result<Loaded, RefreshError> {
        let roots = self.introspect(core).await.map_err(|e| {
            RefreshError::Unreachable(format!(
                "the upstream at {} is unreachable: {e}",
                self.config.url
            ))
        })?;
        let local = self.local_schema.root_fields();
        let clash: Vec<String> = roots
            .query
            .iter()
            .filter(|f| local.query.contains(f))
            .map(|f| format!("Query.{f}"))
            .chain(
                roots
                    .mutation
                    .iter()
                    .filter(|f| local.mutation.contains(f))
                    .map(|f| format!("Mutation.{f}")),
            )
            .collect();
        if !clash.is_empty() {
            return Err(RefreshError::Collision(format!(
                "the upstream's root fields {} collide with tokengate's: rename them upstream",
                clash.join(", ")
            )));
        }
        let composed = self
            .compose(&roots)
            .await
            .map_err(RefreshError::Collision)?;
        let policy =
            crate::graphql::ScopePolicy::from_sdl(&with_directive(composed.sdl()), &core.scopes)
                .map_err(|e| {
                    RefreshError::Collision(format!("the composed schema's scopes: {e}"))
                })?;
        let shared = crate::graphql::SharedPolicy::default();
        let _ = shared.set(policy);
        Ok(Loaded {
            roots,
            composed,
            policy: shared,
        })
    }

    /// The served schema: tokengate's (introspected here) and the upstream's.
    async fn compose(
        &self,
        roots: &UpstreamRoots,
    ) -> Result<async_graphql::dynamic::Schema, String> {
        let local = self
            .local_schema
            .execute(async_graphql::Request::new(compose::INTROSPECTION))
            .await;
        if !local.errors.is_empty() {
            return Err(format!(
                "tokengate's own introspection failed: {}",
                local.errors[0].message
            ));
        }
        let local = local.data.into_json().map_err(|e| e.to_string())?;
        let mut scopes: std::collections::HashMap<String, Vec<String>> = self
            .local_schema
            .policy()
            .guarded_fields()
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().map(str::to_owned).collect()))
            .collect();
        for f in &roots.query {
            scopes.insert(
                format!("Query.{f}"),
                vec![self.config.scope_of("Query", f).to_owned()],
            );
        }
        for f in &roots.mutation {
            scopes.insert(
                format!("Mutation.{f}"),
                vec![self.config.scope_of("Mutation", f).to_owned()],
            );
        }
        compose::compose(&local["__schema"], &roots.schema, &scopes)
    }

    async fn introspect(&self, core: &Core) -> Result<UpstreamRoots, String> {
        let token = assertion::sign(core, &self.config.audience, "tokengate", "", None, None)
            .map_err(|e| e.to_string())?;
        let body: serde_json::Value = self
            .post(
                &token,
                None,
                json!({ "query": compose::INTROSPECTION }).to_string(),
            )
            .await
            .map_err(|e| e.message)?;
        let schema = &body["data"]["__schema"];
        if schema.is_null() {
            return Err(format!(
                "its introspection answered no schema: {}",
                body["errors"][0]["message"].as_str().unwrap_or("no data")
            ));
        }
        let root_type = |k: &str| -> serde_json::Value {
            let name = schema[k]["name"].as_str().unwrap_or("");
            schema["types"]
                .as_array()
                .and_then(|ts| ts.iter().find(|t| t["name"] == name).cloned())
                .unwrap_or(serde_json::Value::Null)
        };
        let names = |t: &serde_json::Value| -> Vec<String> {
            t["fields"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f["name"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(UpstreamRoots {
            query: names(&root_type("queryType")),
            mutation: names(&root_type("mutationType")),
            schema: schema.clone(),
        })
    }

    /// POSTs a GraphQL request upstream with the assertion; answers its JSON
    /// body read as `T` (an object), or why there is none.
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        assertion: &crate::auth::secret::Secret,
        request_id: Option<&str>,
        body: String,
    ) -> Result<T, UpstreamFailure> {
        let (status, bytes) = self.post_raw(assertion, request_id, body).await?;
        decode(status, &bytes)
    }

    /// POSTs a GraphQL request upstream with the assertion; answers the
    /// status and body (at most [`MAX_RESPONSE_BYTES`]).
    async fn post_raw(
        &self,
        assertion: &crate::auth::secret::Secret,
        request_id: Option<&str>,
        body: String,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), UpstreamFailure> {
        let Some(url) = &self.url else {
            return Err(UpstreamFailure::error("the upstream's URL does not parse"));
        };
        let mut req = self
            .client
            .post(url.clone())
            .bearer_auth(assertion.expose())
            .header(
                "accept",
                "application/graphql-response+json, application/json",
            )
            .header("content-type", "application/json")
            .body(body);
        if let Some(id) = request_id {
            req = req.header("x-request-id", id);
        }
        let mut resp = req.send().await.map_err(UpstreamFailure::from)?;
        let status = resp.status();
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(UpstreamFailure::error(
                "the upstream's response is too large",
            ));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(UpstreamFailure::from)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(UpstreamFailure::error(
                    "the upstream's response is too large",
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    }

    async fn run(&self, local: &AppSchema, mut request: async_graphql::Request) -> Answer {
        let parsed = match self.parsed.get(request.query.as_str()) {
            Some(parsed) => parsed,
            None => {
                let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
                    return local.answer(request).await;
                };
                let self_contained =
                    document::split(&doc, None, |_, _| false).is_ok_and(|s| s.self_contained(&doc));
                let parsed = Arc::new(Parsed {
                    doc,
                    self_contained,
                });
                if request.query.len() <= 16 * 1024 {
                    self.parsed
                        .insert(Arc::from(request.query.as_str()), parsed.clone());
                }
                parsed
            }
        };
        let doc = &parsed.doc;
        // One version of the upstream's schema for the whole request.
        let Some(loaded) = self.loaded() else {
            return local.answer(request).await;
        };
        // `requiredScopes` answers over the composed schema (the guard of
        // local fields keeps the local table it was built with).
        request.data.insert(loaded.policy.clone());
        let split = match document::split(doc, request.operation_name.as_deref(), |t, n| {
            loaded.is_upstream(t, n)
        }) {
            Ok(s) if s.has_upstream() || s.has_introspection() => s,
            Ok(_) | Err(NotSplit::Local) => return local.answer(request).await,
            Err(NotSplit::RootFragmentDirectives) => {
                return Answer::Response(Response::from_errors(vec![ServerError::new(
                    "a fragment with directives at the root of a document that names \
                     upstream fields is not supported: put the directives on the fields",
                    None,
                )]))
            }
        };
        let data = |t: std::any::TypeId| request.data.get(&t);
        let principal = data(std::any::TypeId::of::<Arc<Principal>>())
            .and_then(|b| b.downcast_ref::<Arc<Principal>>())
            .cloned();
        let core = data(std::any::TypeId::of::<Arc<Core>>())
            .and_then(|b| b.downcast_ref::<Arc<Core>>())
            .cloned();
        let request_id = data(std::any::TypeId::of::<RequestMeta>())
            .and_then(|b| b.downcast_ref::<RequestMeta>())
            .and_then(|m| m.request_id.clone());
        let (Some(principal), Some(core)) = (principal, core) else {
            return Answer::Response(Response::from_errors(vec![ServerError::new(
                "internal error",
                None,
            )]));
        };
        let root = match split.ty {
            OperationType::Mutation => "Mutation",
            _ => "Query",
        };
        // Each upstream field's scope: refused ones are never sent.
        let mut forbidden: Vec<(String, String)> = Vec::new();
        for f in split.fields.iter().filter(|f| f.side == Side::Upstream) {
            let scope = self.config.scope_of(root, &f.name);
            let held = core
                .scopes
                .get(scope)
                .is_some_and(|s| principal.scopes.contains(s));
            if !held {
                forbidden.push((f.key.clone(), scope.to_owned()));
            }
        }
        let allowed = |f: &document::RootField<'_>| {
            f.side == Side::Upstream && !forbidden.iter().any(|(k, _)| *k == f.key)
        };
        let sends = split.fields.iter().any(allowed);
        // The whole operation goes upstream: nothing refused, nothing local.
        let whole =
            sends && forbidden.is_empty() && !split.has_local() && !split.has_introspection();
        let variables = serde_json::to_value(&request.variables).unwrap_or(json!({}));
        // Sent as it came when the document is this one operation and what it
        // uses (nothing runs locally then).
        let as_written =
            (whole && parsed.self_contained).then(|| std::mem::take(&mut request.query));
        let order: Vec<(String, Side)> = split
            .fields
            .iter()
            .map(|f| (f.key.clone(), f.side))
            .collect();
        // The local part first: an invalid document stops here, before any
        // upstream call; mutations run in that order too.
        // Introspection from the composed schema (no principal needed).
        let mut introspection = serde_json::Map::new();
        if split.has_introspection() {
            let (doc, names) = split.print(|f| f.side == Side::Introspection);
            let vars: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .filter_map(|n| variables.get(n).map(|v| (n.clone(), v.clone())))
                .collect();
            let r = loaded
                .composed
                .execute(async_graphql::Request::new(doc).variables(
                    async_graphql::Variables::from_json(serde_json::Value::Object(vars)),
                ))
                .await;
            if let Ok(serde_json::Value::Object(m)) = r.data.into_json() {
                introspection = m;
            }
        }
        let mut response = if split.has_local() {
            let (local_doc, _) = split.print(|f| f.side == Side::Local);
            request.query = local_doc;
            // A document parsed earlier (GET parses to refuse mutations) is the
            // whole one, not this part: replace it with this part's.
            match async_graphql::parser::parse_query(&request.query) {
                Ok(doc) => request.set_parsed_query(doc),
                Err(_) => {
                    return Answer::Response(Response::from_errors(vec![ServerError::new(
                        "internal error",
                        None,
                    )]))
                }
            }
            let r = local.execute(request).await;
            if r.data == Value::Null
                && !r.errors.is_empty()
                && r.errors.iter().all(|e| e.path.is_empty())
            {
                return Answer::Response(r);
            }
            r
        } else {
            Response::new(Value::Object(Default::default()))
        };
        let mut upstream_data: async_graphql::indexmap::IndexMap<Name, Value> = Default::default();
        let mut errors: Vec<ServerError> = Vec::new();
        for (key, scope) in &forbidden {
            let mut e = ServerError::new(format!("this field needs the `{scope}` scope"), None);
            e.path = vec![async_graphql::PathSegment::Field(key.clone())];
            e.extensions = Some(extensions(&[
                ("code", "FORBIDDEN"),
                ("requiredScope", scope),
            ]));
            errors.push(e);
        }
        if sends {
            // One operation in what is sent: no operationName needed. A
            // document of one operation, all of it the upstream's, is sent as
            // it came (with its variables); otherwise the upstream's part is
            // printed.
            let body = if let Some(query) = &as_written {
                let vars: serde_json::Map<String, serde_json::Value> = split
                    .variables_defined()
                    .filter_map(|n| variables.get(n).map(|v| (n.to_owned(), v.clone())))
                    .collect();
                upstream_body(query, &vars)
            } else {
                let (upstream_doc, upstream_vars) = split.print(allowed);
                let vars: serde_json::Map<String, serde_json::Value> = upstream_vars
                    .iter()
                    .filter_map(|n| variables.get(n).map(|v| (n.clone(), v.clone())))
                    .collect();
                upstream_body(&upstream_doc, &vars)
            };
            let sent_keys: Vec<&str> = split
                .fields
                .iter()
                .filter(|f| allowed(f))
                .map(|f| f.key.as_str())
                .collect();
            let result = match self.caller_assertion(&core, &principal, request_id.as_deref()) {
                Ok(token) => self.post_raw(&token, request_id.as_deref(), body).await,
                Err(e) => Err(UpstreamFailure::error(&e)),
            };
            // An answer to the whole operation with data and no errors is
            // passed on as it came: nothing of tokengate's to merge into it.
            let result = match result {
                Ok((status, bytes))
                    if whole && status.is_success() && data_only(&bytes, &distinct(&sent_keys)) =>
                {
                    return Answer::Json(bytes)
                }
                Ok((status, bytes)) => decode::<UpstreamAnswer>(status, &bytes),
                Err(e) => Err(e),
            };
            match result {
                Ok(answer) => {
                    let no_data = answer.data.is_none();
                    if let Some(d) = answer.data {
                        upstream_data = d;
                    }
                    for e in answer.errors.iter().flatten() {
                        errors.extend(upstream_error(e, no_data, &sent_keys));
                    }
                }
                Err(failure) => {
                    for key in &sent_keys {
                        let mut e = ServerError::new(failure.message.clone(), None);
                        e.path = vec![async_graphql::PathSegment::Field((*key).to_owned())];
                        e.extensions = Some(extensions(&[("code", failure.code)]));
                        errors.push(e);
                    }
                }
            }
        }
        // Merge in the order asked.
        let mut local_data = match std::mem::take(&mut response.data) {
            Value::Object(m) => m,
            _ => Default::default(),
        };
        let mut merged = async_graphql::indexmap::IndexMap::new();
        for (key, side) in order {
            let name = Name::new(&key);
            let v = match side {
                Side::Local => local_data.swap_remove(&name).unwrap_or(Value::Null),
                Side::Introspection => introspection
                    .remove(&key)
                    .and_then(|v| Value::from_json(v).ok())
                    .unwrap_or(Value::Null),
                Side::Upstream => upstream_data.swap_remove(&name).unwrap_or(Value::Null),
            };
            merged.insert(name, v);
        }
        response.data = Value::Object(merged);
        response.errors.extend(errors);
        Answer::Response(response)
    }

    /// The assertion for one forwarded request: the caller's id and scopes,
    /// a service account's client id (carried by the principal).
    fn caller_assertion(
        &self,
        core: &Core,
        p: &Principal,
        request_id: Option<&str>,
    ) -> Result<crate::auth::secret::Secret, String> {
        assertion::sign(
            core,
            &self.config.audience,
            &p.user_id,
            &core.scopes.to_space_separated(p.scopes),
            p.client_id.as_deref(),
            request_id,
        )
        .map_err(|e| e.to_string())
    }
}

/// The composed SDL with `@requiresScopes` defined: the dynamic schema prints
/// applied directives but not this one's definition, and SDL tools
/// (graphql-js, tokengate's own policy reader) want it.
fn with_directive(mut sdl: String) -> String {
    if !sdl.contains("directive @requiresScopes") {
        sdl.push_str("directive @requiresScopes(scopes: [[String!]!]!) on FIELD_DEFINITION\n");
    }
    sdl
}

fn extensions(pairs: &[(&str, &str)]) -> async_graphql::ErrorExtensionValues {
    let mut ext = async_graphql::ErrorExtensionValues::default();
    for (k, v) in pairs {
        ext.set(*k, *v);
    }
    ext
}

/// An upstream GraphQL error as a tokengate error: `UPSTREAM_ERROR`, the
/// upstream's own code kept as `upstreamCode`. One without a path (the
/// upstream refused the whole request) is reported on every field sent.
fn upstream_error(e: &serde_json::Value, no_data: bool, sent: &[&str]) -> Vec<ServerError> {
    let message = e["message"].as_str().unwrap_or("upstream error").to_owned();
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", "UPSTREAM_ERROR");
    if let Some(code) = e["extensions"]["code"].as_str() {
        ext.set("upstreamCode", code);
    }
    let path: Vec<async_graphql::PathSegment> = e["path"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|s| match s {
                    serde_json::Value::String(k) => {
                        Some(async_graphql::PathSegment::Field(k.clone()))
                    }
                    serde_json::Value::Number(n) => n
                        .as_u64()
                        .map(|i| async_graphql::PathSegment::Index(i as usize)),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if path.is_empty() && no_data {
        return sent
            .iter()
            .map(|k| {
                let mut err = ServerError::new(format!("upstream: {message}"), None);
                err.path = vec![async_graphql::PathSegment::Field((*k).to_owned())];
                err.extensions = Some(ext.clone());
                err
            })
            .collect();
    }
    let mut err = ServerError::new(message, None);
    err.path = path;
    err.extensions = Some(ext);
    vec![err]
}

/// The body of a request upstream: `query` and `variables`.
fn upstream_body(query: &str, variables: &impl serde::Serialize) -> String {
    #[derive(serde::Serialize)]
    struct Body<'a, V: serde::Serialize> {
        query: &'a str,
        variables: &'a V,
    }
    serde_json::to_string(&Body { query, variables }).unwrap_or_default()
}

/// An upstream's body read as `T`: a JSON object, else an UPSTREAM_ERROR.
fn decode<T: serde::de::DeserializeOwned>(
    status: reqwest::StatusCode,
    bytes: &[u8],
) -> Result<T, UpstreamFailure> {
    let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    match serde_json::from_slice::<T>(bytes) {
        Ok(v) if object => Ok(v),
        _ => Err(UpstreamFailure::error(&format!(
            "the upstream answered HTTP {} without a GraphQL response",
            status.as_u16()
        ))),
    }
}

/// `keys` without repeats, in first-seen order (the response keys of fields
/// GraphQL merges).
fn distinct<'k>(keys: &[&'k str]) -> Vec<&'k str> {
    let mut out: Vec<&str> = Vec::with_capacity(keys.len());
    for k in keys {
        if !out.contains(k) {
            out.push(k);
        }
    }
    out
}

/// Whether `body` is a GraphQL response that can be sent on as it came:
/// one JSON object whose only entry is `data`, an object whose keys are
/// exactly `keys` in that order (so no errors, no extensions, nothing the
/// caller did not ask). Reads the body without building values.
fn data_only(body: &[u8], keys: &[&str]) -> bool {
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
    use std::fmt;

    /// A map key that must be this one.
    struct Key<'k>(&'k str);
    impl<'de> DeserializeSeed<'de> for Key<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_str(self)
        }
    }
    impl Visitor<'_> for Key<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "the key {:?}", self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
            if v == self.0 {
                Ok(())
            } else {
                Err(E::custom("another key"))
            }
        }
    }
    /// An object whose keys are exactly `keys`, in order; with `inner`, its
    /// one value is such an object in turn.
    struct Object<'k> {
        keys: &'k [&'k str],
        inner: Option<&'k [&'k str]>,
    }
    impl<'de> DeserializeSeed<'de> for Object<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Object<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            for key in self.keys {
                map.next_key_seed(Key(key))?
                    .ok_or_else(|| de::Error::custom("a key is missing"))?;
                match self.inner {
                    Some(keys) => map.next_value_seed(Object { keys, inner: None })?,
                    None => {
                        map.next_value::<Valid>()?;
                    }
                }
            }
            match map.next_key::<IgnoredAny>()? {
                None => Ok(()),
                Some(_) => Err(de::Error::custom("a key more")),
            }
        }
    }
    /// Any JSON value, read whole (strings as UTF-8 without lone
    /// surrogates, numbers in range), kept nowhere: `IgnoredAny` skips
    /// strings without checking them.
    struct Valid;
    impl<'de> de::Deserialize<'de> for Valid {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Valid, D::Error> {
            d.deserialize_any(Valid)
        }
    }
    impl<'de> Visitor<'de> for Valid {
        type Value = Valid;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Valid, E> {
            Ok(Valid)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Valid, E> {
            Ok(Valid)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Valid, E> {
            Ok(Valid)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Valid, E> {
            Ok(Valid)
        }
        fn visit_str<E>(self, _: &str) -> Result<Valid, E> {
            Ok(Valid)
        }
        fn visit_unit<E>(self) -> Result<Valid, E> {
            Ok(Valid)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Valid, A::Error> {
            while seq.next_element::<Valid>()?.is_some() {}
            Ok(Valid)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Valid, A::Error> {
            while map.next_entry::<Valid, Valid>()?.is_some() {}
            Ok(Valid)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    Object {
        keys: &["data"],
        inner: Some(keys),
    }
    .deserialize(&mut de)
    .is_ok()
        && de.end().is_ok()
}

/// An upstream's GraphQL response, its data read straight into values.
#[derive(serde::Deserialize)]
struct UpstreamAnswer {
    #[serde(default)]
    data: Option<async_graphql::indexmap::IndexMap<Name, Value>>,
    #[serde(default)]
    errors: Option<Vec<serde_json::Value>>,
}

/// Why the upstream's schema could not be used.
#[derive(Debug)]
pub enum RefreshError {
    /// It did not answer an introspection query (down, refused, not GraphQL).
    Unreachable(String),
    /// A root field of it has the name of one of tokengate's.
    Collision(String),
}

impl std::fmt::Display for RefreshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefreshError::Unreachable(e) | RefreshError::Collision(e) => f.write_str(e),
        }
    }
}

/// Why an upstream call gave no GraphQL response.
#[derive(Debug)]
struct UpstreamFailure {
    code: &'static str,
    message: String,
}

impl UpstreamFailure {
    fn error(message: &str) -> UpstreamFailure {
        UpstreamFailure {
            code: "UPSTREAM_ERROR",
            message: message.to_owned(),
        }
    }
}

impl From<reqwest::Error> for UpstreamFailure {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            UpstreamFailure {
                code: "UPSTREAM_TIMEOUT",
                message: "the upstream did not answer in time".into(),
            }
        } else {
            // Without the URL: callers need not learn where the upstream is.
            UpstreamFailure::error(&format!(
                "the upstream is unreachable: {}",
                crate::error::chain(&e.without_url())
            ))
        }
    }
}

impl Forwarder for Gateway {
    fn execute<'a>(
        &'a self,
        local: &'a AppSchema,
        request: async_graphql::Request,
    ) -> Pin<Box<dyn Future<Output = Answer> + Send + 'a>> {
        Box::pin(self.run(local, request))
    }

    fn problem(&self) -> Option<String> {
        Gateway::problem(self)
    }

    fn sdl(&self) -> Option<String> {
        self.loaded().map(|l| with_directive(l.composed.sdl()))
    }
}

/// Keeps the upstream's schema fresh: every `upstream.refresh` and on
/// SIGHUP; every 2 seconds while it is not loaded.
pub async fn keep_fresh(gateway: Arc<Gateway>, core: Arc<Core>) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let wait = if gateway.problem().is_none() {
            gateway.config.refresh
        } else {
            Duration::from_secs(2).min(gateway.config.refresh)
        };
        #[cfg(unix)]
        let hup = async {
            match hangup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hup = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = hup => tracing::info!("SIGHUP: reading the upstream's schema again"),
        }
        match gateway.refresh(&core).await {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(upstream = %gateway.config.url, error = %e, "upstream schema not loaded; retrying")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{data_only, distinct};

    #[test]
    fn only_a_bare_answer_with_the_keys_asked_in_order_is_passed_on() {
        let keys = ["a", "b"];
        let yes = |body: &str| data_only(body.as_bytes(), &keys);
        assert!(yes(r#"{"data":{"a":[{"x":1}],"b":null}}"#));
        assert!(yes(
            " {\n \"data\" : { \"\\u0061\": 1, \"b\": {\"errors\": [2.5e3, \"\\u00e9\"]} } } \n"
        ));
        // Anything the caller must not get as it came: errors, extensions,
        // keys not asked, missing or out of order, data not an object, not
        // one JSON value.
        for body in [
            r#"{"data":{"a":1,"b":2},"errors":[{"message":"x"}]}"#,
            r#"{"errors":[{"message":"x"}],"data":{"a":1,"b":2}}"#,
            r#"{"data":{"a":1,"b":2},"extensions":{}}"#,
            r#"{"data":{"a":1,"b":2,"c":3}}"#,
            r#"{"data":{"a":1}}"#,
            r#"{"data":{"b":2,"a":1}}"#,
            r#"{"data":{"a":1,"a":1,"b":2}}"#,
            r#"{"data":null}"#,
            r#"{"data":[1,2]}"#,
            r#"{"data":{"a":1,"b":2}} {}"#,
            // Not valid JSON deep inside: a lone surrogate, a number out of range.
            r#"{"data":{"a":"\ud800","b":2}}"#,
            r#"{"data":{"a":[1e400],"b":2}}"#,
            r#"{"data":{"a":1,"b":2}"#,
            r#"[{"data":{"a":1,"b":2}}]"#,
            "",
        ] {
            assert!(!yes(body), "{body}");
        }
        assert_eq!(distinct(&["a", "b", "a", "c", "b"]), ["a", "b", "c"]);
    }
}
