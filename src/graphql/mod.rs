//! The GraphQL schema: roots merged per domain, scope guards on every field,
//! and limits on depth, complexity and aliases. Built without any I/O, so
//! `tokengate schema` runs anywhere.

mod audit;
pub mod http;
mod limits;
mod policy;
mod service_accounts;
mod tokens;
mod types;
mod users;
mod webhooks;
pub mod ws;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_graphql::{
    Context, EmptyMutation, EmptySubscription, MergedObject, Object, ObjectType, Schema,
    SubscriptionType, ID,
};

use crate::auth::scopes::Scopes;
use crate::auth::{Credential, Principal, Role};
use crate::core::Core;
use crate::error::{AppError, GqlResult};
pub use policy::{requires_scope, ScopePolicy, SharedPolicy};

/// Deepest selection accepted: room for the standard introspection query that
/// GraphQL tools send (about 14 levels), little more.
pub const MAX_DEPTH: usize = 16;
/// Largest complexity (fields, roughly) accepted.
pub const MAX_COMPLEXITY: usize = 500;
/// Most aliases accepted in one document.
pub const MAX_ALIASES: usize = 30;
/// Most fields one document may expand to through its fragments.
pub const MAX_EXPANDED_FIELDS: u64 = 2_000;

/// tokengate's own query fields.
#[derive(MergedObject, Default)]
pub struct TokengateQuery(
    users::UserQuery,
    tokens::TokenQuery,
    service_accounts::ServiceAccountQuery,
    ScopeQuery,
    audit::AuditQuery,
    webhooks::WebhookQuery,
);

/// tokengate's own mutation fields.
#[derive(MergedObject, Default)]
pub struct TokengateMutation(
    tokens::TokenMutation,
    service_accounts::ServiceAccountMutation,
    webhooks::WebhookMutation,
);

/// Queries: tokengate's token management and the application's own fields.
#[derive(MergedObject)]
#[graphql(name = "Query")]
pub struct QueryRoot<Q: ObjectType + 'static>(TokengateQuery, Q);

/// Mutations: tokengate's token management and the application's own fields.
#[derive(MergedObject)]
#[graphql(name = "Mutation")]
pub struct MutationRoot<M: ObjectType + 'static>(TokengateMutation, M);

/// Subscriptions: tokengate's token events and the application's own fields.
#[derive(async_graphql::MergedSubscription)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot<S: SubscriptionType + 'static>(tokens::TokenSubscription, S);

/// A schema of any application's roots, behind one type for the handlers.
trait Executable: Send + Sync {
    fn execute(
        &self,
        request: async_graphql::Request,
    ) -> Pin<Box<dyn Future<Output = async_graphql::Response> + Send + '_>>;
    fn sdl(&self) -> String;
    fn execute_stream(
        &self,
        request: async_graphql::Request,
    ) -> async_graphql::futures_util::stream::BoxStream<'static, async_graphql::Response>;
}

impl<Q, M, S> Executable for Schema<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    fn execute(
        &self,
        request: async_graphql::Request,
    ) -> Pin<Box<dyn Future<Output = async_graphql::Response> + Send + '_>> {
        Box::pin(Schema::execute(self, request))
    }
    fn sdl(&self) -> String {
        Schema::sdl(self)
    }
    fn execute_stream(
        &self,
        request: async_graphql::Request,
    ) -> async_graphql::futures_util::stream::BoxStream<'static, async_graphql::Response> {
        Schema::execute_stream(self, request)
    }
}

/// The served schema: tokengate's roots merged with an application's, the
/// scope guard on every field, and the limits. Cheap to clone.
#[derive(Clone)]
pub struct AppSchema {
    inner: Arc<dyn Executable>,
    policy: policy::SharedPolicy,
    roots: Arc<RootFields>,
    forwarder: Option<Arc<dyn Forwarder>>,
}

/// The root field names of the served schema (tokengate's and the application's).
#[derive(Debug, Default)]
pub struct RootFields {
    /// `Query`'s fields.
    pub query: Vec<String>,
    /// `Mutation`'s fields.
    pub mutation: Vec<String>,
}

/// What a [`Forwarder`] answers.
pub enum Answer {
    /// A GraphQL response, to be encoded.
    Response(async_graphql::Response),
    /// A GraphQL response already encoded: an upstream's body, `{"data": {…}}`
    /// and nothing else, its keys those asked in the order asked (checked by
    /// the forwarder), sent on as it came instead of being decoded and
    /// encoded again.
    Json(Vec<u8>),
}

impl Answer {
    /// The answer as a GraphQL response (an encoded one decoded).
    pub fn into_response(self) -> async_graphql::Response {
        match self {
            Answer::Response(r) => r,
            Answer::Json(body) => {
                #[derive(serde::Deserialize)]
                struct Body {
                    data: async_graphql::Value,
                }
                match serde_json::from_slice::<Body>(&body) {
                    Ok(b) => async_graphql::Response::new(b.data),
                    Err(_) => {
                        async_graphql::Response::from_errors(vec![async_graphql::ServerError::new(
                            "internal error",
                            None,
                        )])
                    }
                }
            }
        }
    }
}

/// Runs requests that name root fields served elsewhere (gateway mode): given
/// the local schema, it runs the local part there and the rest upstream.
pub trait Forwarder: Send + Sync {
    /// Answers `request`; `local` is the schema without the forwarder.
    fn execute<'a>(
        &'a self,
        local: &'a AppSchema,
        request: async_graphql::Request,
    ) -> Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

    /// Why requests cannot be forwarded now (for `/readyz`); `None` when they can.
    fn problem(&self) -> Option<String> {
        None
    }

    /// The SDL of the whole served schema, when it is more than the local one.
    fn sdl(&self) -> Option<String> {
        None
    }
}

impl AppSchema {
    /// Runs one GraphQL request (its data must hold the principal and core).
    pub async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        self.answer(request).await.into_response()
    }

    /// Runs one GraphQL request, as [`AppSchema::execute`]; in gateway mode
    /// an answer that came whole from the upstream may stay encoded.
    pub async fn answer(&self, request: async_graphql::Request) -> Answer {
        match &self.forwarder {
            Some(f) => {
                let local = AppSchema {
                    forwarder: None,
                    ..self.clone()
                };
                f.execute(&local, request).await
            }
            None => Answer::Response(self.inner.execute(request).await),
        }
    }

    /// The same schema, with root fields not its own run by `forwarder`.
    pub fn with_forwarder(mut self, forwarder: Arc<dyn Forwarder>) -> AppSchema {
        self.forwarder = Some(forwarder);
        self
    }

    /// Why the forwarder (gateway mode) cannot serve now, if it cannot.
    pub fn forwarding_problem(&self) -> Option<String> {
        self.forwarder.as_ref().and_then(|f| f.problem())
    }

    /// The root field names this schema serves itself.
    pub fn root_fields(&self) -> &RootFields {
        &self.roots
    }

    /// Runs a subscription (or any operation) as a stream of responses. In
    /// gateway mode a query or mutation goes through the forwarder (one
    /// response); subscriptions are tokengate's own.
    pub fn execute_stream(
        &self,
        request: async_graphql::Request,
    ) -> async_graphql::futures_util::stream::BoxStream<'static, async_graphql::Response> {
        if self.forwarder.is_some() && !is_subscription(&request) {
            let this = self.clone();
            return Box::pin(async_graphql::futures_util::stream::once(async move {
                this.execute(request).await
            }));
        }
        self.inner.execute_stream(request)
    }

    /// The SDL, with `@requiresScopes` on every guarded field (in gateway
    /// mode, once the upstream's schema is read, the upstream's fields too).
    pub fn sdl(&self) -> String {
        self.forwarder
            .as_ref()
            .and_then(|f| f.sdl())
            .unwrap_or_else(|| self.inner.sdl())
    }

    /// The SDL of this process's own fields only (the scope policy's source).
    pub fn local_sdl(&self) -> String {
        self.inner.sdl()
    }

    /// The field scopes the guard enforces.
    pub fn policy(&self) -> &ScopePolicy {
        self.policy.get().expect("set when the schema is built")
    }
}

/// Whether the operation `request` selects is a subscription (an unparseable
/// document or an unknown operation: not one, and the schema reports it).
fn is_subscription(request: &async_graphql::Request) -> bool {
    use async_graphql::parser::types::OperationType;
    let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    doc.operations.iter().any(|(name, op)| {
        op.node.ty == OperationType::Subscription
            && match &request.operation_name {
                Some(wanted) => name.is_some_and(|n| n.as_str() == wanted),
                None => true,
            }
    })
}

/// Builds the schema of tokengate alone (the `tokengate` binary's).
pub fn build_schema(scopes: &Scopes) -> Result<AppSchema, String> {
    build_schema_with(
        EmptyMutation,
        EmptyMutation,
        EmptySubscription,
        scopes,
        AppData::default(),
    )
}

/// Values an application shares with its resolvers (clients, channels,
/// caches), one per type: `TokenGate::data` in, [`app_data`] out.
#[derive(Default)]
pub struct AppData(async_graphql::Data);

impl AppData {
    /// Adds a value; a second value of the same type replaces the first.
    pub fn insert<D: std::any::Any + Send + Sync>(&mut self, value: D) {
        self.0.insert(value);
    }
}

/// The application's value of type `D`, given with `TokenGate::data`.
pub fn app_data<'a, D: std::any::Any + Send + Sync>(
    ctx: &'a Context<'_>,
) -> async_graphql::Result<&'a D> {
    ctx.data_opt::<AppData>()
        .and_then(|d| d.0.get(&std::any::TypeId::of::<D>()))
        .and_then(|b| b.downcast_ref::<D>())
        .ok_or_else(|| {
            async_graphql::Error::new(format!(
                "no application data of type {}: give it with TokenGate::data",
                std::any::type_name::<D>()
            ))
        })
}

/// Builds the schema of tokengate's roots merged with an application's;
/// request data (principal, core) is added per request. Fails when a field
/// requires a scope `scopes` does not declare.
pub fn build_schema_with<Q, M, S>(
    query: Q,
    mutation: M,
    subscription: S,
    scopes: &Scopes,
    app_data: AppData,
) -> Result<AppSchema, String>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    for (name, root) in [
        (Q::type_name(), "Query"),
        (M::type_name(), "Mutation"),
        (S::type_name(), "Subscription"),
    ] {
        if name == root {
            return Err(format!(
                "the application's {root} object is named `{root}`, the name of the merged \
                 root it goes into: name it something else, such as `BooksQuery`, or give it \
                 #[graphql(name = \"BooksQuery\")]"
            ));
        }
    }
    refuse_collisions(
        "Query",
        &field_names::<TokengateQuery>(),
        field_names::<Q>(),
    )?;
    refuse_collisions(
        "Mutation",
        &field_names::<TokengateMutation>(),
        field_names::<M>(),
    )?;
    refuse_collisions(
        "Subscription",
        &subscription_field_names::<tokens::TokenSubscription>(),
        subscription_field_names::<S>(),
    )?;
    let shared = policy::SharedPolicy::default();
    // async-graphql panics when two Rust types take one GraphQL name (an
    // application's `User` beside tokengate's): report it as an error.
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Schema::build(
            QueryRoot(TokengateQuery::default(), query),
            MutationRoot(TokengateMutation::default(), mutation),
            SubscriptionRoot(tokens::TokenSubscription, subscription),
        )
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .limit_recursive_depth(32)
        .limit_directives(10)
        .extension(Checks {
            limits: limits::DocumentLimits::new(MAX_ALIASES, MAX_EXPANDED_FIELDS),
            scopes: policy::ScopeGuard(shared.clone()),
        })
        .data(shared.clone())
        .data(app_data)
        .finish()
    }));
    let schema = built.map_err(|panic| {
        let detail = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a type conflict");
        format!("the application's GraphQL types conflict with tokengate's: {detail}")
    })?;
    let policy = ScopePolicy::from_sdl(&schema.sdl(), scopes)?;
    if shared.set(policy).is_err() {
        unreachable!("the policy is set once, here");
    }
    let mut query = field_names::<TokengateQuery>();
    query.extend(field_names::<Q>());
    let mut mutation = field_names::<TokengateMutation>();
    mutation.extend(field_names::<M>());
    Ok(AppSchema {
        inner: Arc::new(schema),
        policy: shared,
        roots: Arc::new(RootFields { query, mutation }),
        forwarder: None,
    })
}

/// Field names of the type `name` once `register` has registered it (an
/// object or a subscription root), in a registry of their own.
fn registered_fields(
    name: &str,
    register: impl FnOnce(&mut async_graphql::registry::Registry),
) -> Vec<String> {
    let mut registry = async_graphql::registry::Registry::default();
    register(&mut registry);
    match registry.types.get(name) {
        Some(async_graphql::registry::MetaType::Object { fields, .. }) => {
            fields.keys().cloned().collect()
        }
        _ => Vec::new(),
    }
}

fn field_names<T: ObjectType>() -> Vec<String> {
    registered_fields(&T::type_name(), |r| {
        T::create_type_info(r);
    })
}

fn subscription_field_names<T: SubscriptionType>() -> Vec<String> {
    registered_fields(&T::type_name(), |r| {
        T::create_type_info(r);
    })
}

/// A root field both tokengate and the application define would be served by
/// one and described by the other: refused, naming it.
fn refuse_collisions(root: &str, ours: &[String], theirs: Vec<String>) -> Result<(), String> {
    let taken: Vec<String> = theirs.into_iter().filter(|f| ours.contains(f)).collect();
    if taken.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the application's {root} fields {} collide with tokengate's; rename them",
            taken
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// `requiredScopes`: any authenticated caller.
#[derive(Default)]
pub struct ScopeQuery;

#[Object]
impl ScopeQuery {
    /// The least set of scopes running `query` needs (the operation
    /// `operationName` when the document has several): mint a token with
    /// exactly these for a script that runs it.
    async fn required_scopes(
        &self,
        ctx: &Context<'_>,
        query: String,
        operation_name: Option<String>,
    ) -> async_graphql::Result<Vec<String>> {
        principal(ctx).gql()?;
        let policy = ctx
            .data::<policy::SharedPolicy>()
            .ok()
            .and_then(|p| p.get())
            .ok_or_else(|| AppError::internal("scope policy not built"))
            .gql()?;
        let set = policy
            .required_scopes(&query, operation_name.as_deref())
            .gql()?;
        let core = core_of(ctx).gql()?;
        Ok(core.scopes.names(set))
    }
}

/// What a resolver knows about the HTTP request.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    /// The client address (the TCP peer), for audit events.
    pub ip: std::net::IpAddr,
    /// `ip` as text, made the first time a resolver asks (most requests never do).
    ip_text: std::sync::OnceLock<String>,
    /// The request's `x-request-id` (forwarded to an upstream in gateway mode).
    pub request_id: Option<String>,
}

impl RequestMeta {
    /// The metadata of a request from `ip` with that request id.
    pub fn new(ip: std::net::IpAddr, request_id: Option<String>) -> Self {
        RequestMeta {
            ip,
            ip_text: std::sync::OnceLock::new(),
            request_id,
        }
    }

    /// The client address as text, as audit events record it.
    pub fn ip_text(&self) -> &str {
        self.ip_text.get_or_init(|| self.ip.to_string())
    }
}

/// How the caller proved who they are, as [`Caller::authenticated_by`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A browser session cookie.
    Session,
    /// An access token (`Authorization: Bearer`).
    Token,
    /// A service account's client credentials (OAuth endpoints).
    Client,
    /// The operator at the command line.
    Operator,
}

/// Who is calling, for an application's resolvers: [`caller`].
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    principal: &'a Principal,
    scopes: &'a Scopes,
}

impl<'a> Caller<'a> {
    /// The user's id (a service account's user id for machine clients).
    pub fn user_id(&self) -> &'a str {
        &self.principal.user_id
    }

    /// The user's role.
    pub fn role(&self) -> Role {
        self.principal.role
    }

    /// Whether the credential carries the scope of that name.
    pub fn has_scope(&self, name: &str) -> bool {
        self.scopes
            .get(name)
            .is_some_and(|s| self.principal.scopes.contains(s))
    }

    /// The credential's scopes, by name, in declaration order.
    pub fn scopes(&self) -> Vec<&'static str> {
        self.scopes
            .iter(self.principal.scopes)
            .map(|s| s.as_str())
            .collect()
    }

    /// How the caller authenticated.
    pub fn authenticated_by(&self) -> AuthMethod {
        match self.principal.credential {
            Credential::Session { .. } => AuthMethod::Session,
            Credential::Token { .. } => AuthMethod::Token,
            Credential::Client { .. } => AuthMethod::Client,
            Credential::Operator => AuthMethod::Operator,
        }
    }

    /// The access token's id (`jti`) when authenticated by a token.
    pub fn token_id(&self) -> Option<&'a str> {
        self.principal.token_id()
    }

    /// The whole principal, for code that needs tokengate's own types.
    pub fn principal(&self) -> &'a Principal {
        self.principal
    }
}

/// The caller of the field being resolved. The guard has authenticated every
/// request before any field resolves, so this fails only outside a tokengate
/// request.
///
/// ```
/// use async_graphql::{Context, Object};
///
/// struct Greeting;
///
/// #[Object]
/// impl Greeting {
///     #[graphql(directive = tokengate::requires_scope::apply("me:read"))]
///     async fn hello(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
///         let caller = tokengate::caller(ctx)?;
///         Ok(format!("hello, {}", caller.user_id()))
///     }
/// }
/// ```
pub fn caller<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<Caller<'a>> {
    let principal = principal(ctx).gql()?;
    let core = core_of(ctx).gql()?;
    Ok(Caller {
        principal,
        scopes: &core.scopes,
    })
}

/// The deployment's database, for an application's resolvers.
pub fn database<'a>(
    ctx: &'a Context<'_>,
) -> async_graphql::Result<&'a sea_orm::DatabaseConnection> {
    Ok(&core_of(ctx).gql()?.db)
}

/// A `BAD_USER_INPUT` error with that message, as tokengate's own fields report bad input.
pub fn bad_user_input(message: impl Into<String>) -> async_graphql::Error {
    use async_graphql::ErrorExtensions;
    AppError::BadInput(message.into()).extend()
}

pub(crate) fn principal<'a>(ctx: &'a Context<'_>) -> Result<&'a Principal, AppError> {
    ctx.data::<Arc<Principal>>()
        .map(Arc::as_ref)
        .map_err(|_| AppError::internal("GraphQL executed without a principal"))
}

/// tokengate's checks on every operation, as one async-graphql extension: the
/// document limits ([`limits`]) and the scope guard ([`policy`]). One, not
/// two, because async-graphql boxes a future per extension for every hook of
/// every request and every resolved field.
struct Checks {
    limits: limits::DocumentLimits,
    scopes: policy::ScopeGuard,
}

impl async_graphql::extensions::ExtensionFactory for Checks {
    fn create(&self) -> Arc<dyn async_graphql::extensions::Extension> {
        Arc::new(ChecksExtension {
            limits: self.limits.for_request(),
            scopes: self.scopes.clone(),
        })
    }
}

/// Made for each request.
struct ChecksExtension {
    limits: limits::DocumentLimitsExtension,
    scopes: policy::ScopeGuard,
}

#[async_graphql::async_trait::async_trait]
impl async_graphql::extensions::Extension for ChecksExtension {
    async fn prepare_request(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        request: async_graphql::Request,
        next: async_graphql::extensions::NextPrepareRequest<'_>,
    ) -> async_graphql::ServerResult<async_graphql::Request> {
        self.limits.prepare_request(ctx, request, next).await
    }

    async fn parse_query(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        query: &str,
        variables: &async_graphql::Variables,
        next: async_graphql::extensions::NextParseQuery<'_>,
    ) -> async_graphql::ServerResult<async_graphql::parser::types::ExecutableDocument> {
        self.scopes.parse_query(ctx, query, variables, next).await
    }

    async fn validation(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        next: async_graphql::extensions::NextValidation<'_>,
    ) -> Result<async_graphql::ValidationResult, Vec<async_graphql::ServerError>> {
        self.limits.validation(ctx, next).await
    }

    async fn resolve(
        &self,
        ctx: &async_graphql::extensions::ExtensionContext<'_>,
        info: async_graphql::extensions::ResolveInfo<'_>,
        next: async_graphql::extensions::NextResolve<'_>,
    ) -> async_graphql::ServerResult<Option<async_graphql::Value>> {
        self.scopes.resolve(ctx, info, next).await
    }
}

/// A resolver's database work, in an allocation of its own. async-graphql
/// moves each field's future into a box as large as the largest of its type's
/// fields' (for a root field: of every field of the merged `Query` root), and a
/// database call's future is ~3 KiB: kept inline, it made every `{ me { id } }`
/// allocate and copy ~5 KiB per field. So a resolver that reaches the database
/// awaits its call through this, and the fields that do not stay cheap
/// (BENCHMARKS.md, "Small futures").
pub(crate) fn boxed<F: Future>(work: F) -> Pin<Box<F>> {
    Box::pin(work)
}

pub(crate) fn core_of<'a>(ctx: &'a Context<'_>) -> Result<&'a Core, AppError> {
    ctx.data::<Arc<Core>>()
        .map(Arc::as_ref)
        .map_err(|_| AppError::internal("GraphQL executed without the core"))
}

/// A listing's `first`/`after` arguments, checked.
pub(crate) fn page(first: Option<i32>, after: Option<ID>) -> Result<crate::db::Page, AppError> {
    let max = crate::db::MAX_PAGE;
    let first = match first {
        None => None,
        Some(n) if n >= 1 && (n as u64) <= max => Some(n as u64),
        Some(_) => return Err(AppError::BadInput(format!("first must be from 1 to {max}"))),
    };
    Ok(crate::db::Page {
        first,
        after: after.map(|a| a.0),
    })
}

pub(crate) fn ip<'a>(ctx: &'a Context<'_>) -> Option<&'a str> {
    ctx.data::<RequestMeta>().ok().map(RequestMeta::ip_text)
}
