//! The crate's public face (SPEC §7): an application's GraphQL roots, scopes
//! and migrations in, the whole tokengate around them out — the guard,
//! sessions, tokens, the playground, the console, OAuth, JWKS, metrics and
//! every subcommand, with the same configuration precedence. The `tokengate`
//! binary is `TokenGate::new().main()`.

use std::future::Future;
use std::process::ExitCode;

use async_graphql::{EmptyMutation, EmptySubscription, ObjectType, SubscriptionType};
use clap::Parser;
use migration::MigratorTrait;

use crate::auth::scopes::{ScopeDef, Scopes};
use crate::cli::{self, Cli};
use crate::config::Config;
use crate::db::Migrations;
use crate::graphql::{self, AppData, AppSchema};
use crate::server::{self, Running};
use crate::telemetry;

/// A tokengate deployment with an application's API inside it.
///
/// ```no_run
/// use async_graphql::{Context, Object};
/// use tokengate::{requires_scope, Role, ScopeDef, TokenGate};
///
/// #[derive(Default)]
/// struct HelloQuery;
///
/// #[Object]
/// impl HelloQuery {
///     /// Needs `hello:read`; FORBIDDEN with `requiredScope` otherwise.
///     #[graphql(directive = requires_scope::apply("hello:read"))]
///     async fn hello(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
///         Ok(format!("hello, {}", tokengate::caller(ctx)?.user_id()))
///     }
/// }
///
/// fn main() -> std::process::ExitCode {
///     TokenGate::new()
///         .query(HelloQuery)
///         .scope(ScopeDef::new("hello:read", "Be greeted").held_by([Role::Member]))
///         .main()
/// }
/// ```
pub struct TokenGate<Q = EmptyMutation, M = EmptyMutation, S = EmptySubscription> {
    query: Q,
    mutation: M,
    subscription: S,
    scopes: Vec<ScopeDef>,
    migrations: Migrations,
    data: AppData,
}

impl TokenGate {
    /// tokengate alone: its own fields, scopes and tables.
    pub fn new() -> Self {
        TokenGate {
            query: EmptyMutation,
            mutation: EmptyMutation,
            subscription: EmptySubscription,
            scopes: Vec::new(),
            migrations: Migrations::default(),
            data: AppData::default(),
        }
    }
}

impl Default for TokenGate {
    fn default() -> Self {
        TokenGate::new()
    }
}

impl<Q, M, S> TokenGate<Q, M, S>
where
    Q: ObjectType + 'static,
    M: ObjectType + 'static,
    S: SubscriptionType + 'static,
{
    /// The application's query fields, merged into `Query` beside tokengate's
    /// (a field name both define is refused when the schema is built). No
    /// GraphQL type of the application may be named `Query` or `Mutation`, the
    /// names of tokengate's roots: async-graphql panics on the clash.
    pub fn query<Q2: ObjectType + 'static>(self, query: Q2) -> TokenGate<Q2, M, S> {
        TokenGate {
            query,
            mutation: self.mutation,
            subscription: self.subscription,
            scopes: self.scopes,
            migrations: self.migrations,
            data: self.data,
        }
    }

    /// The application's mutation fields, merged into `Mutation` (type names as
    /// for [`query`](Self::query)).
    pub fn mutation<M2: ObjectType + 'static>(self, mutation: M2) -> TokenGate<Q, M2, S> {
        TokenGate {
            query: self.query,
            mutation,
            subscription: self.subscription,
            scopes: self.scopes,
            migrations: self.migrations,
            data: self.data,
        }
    }

    /// The application's subscription root.
    pub fn subscription<S2: SubscriptionType + 'static>(
        self,
        subscription: S2,
    ) -> TokenGate<Q, M, S2> {
        TokenGate {
            query: self.query,
            mutation: self.mutation,
            subscription,
            scopes: self.scopes,
            migrations: self.migrations,
            data: self.data,
        }
    }

    /// Shares a value with the application's resolvers (a client, a channel,
    /// a cache; one per type), read with [`crate::app_data`].
    pub fn data<D: std::any::Any + Send + Sync>(mut self, value: D) -> Self {
        self.data.insert(value);
        self
    }

    /// Declares a scope beside tokengate's; it behaves as theirs everywhere
    /// (tokens, the console, OAuth `scope`, service accounts, `requiredScopes`).
    pub fn scope(mut self, scope: ScopeDef) -> Self {
        self.scopes.push(scope);
        self
    }

    /// The application's migrations, applied after tokengate's by `serve`,
    /// `migrate` and every command that opens the database. Name them so they
    /// cannot collide with tokengate's (`m20261124_000001_…` style names are
    /// tokengate's; prefix yours, such as `bookstore_m0001_create_books`).
    pub fn migrations<A: MigratorTrait + 'static>(mut self) -> Self {
        self.migrations = Migrations::with::<A>();
        self
    }

    /// Adds the application's scopes and migrations to `config` and builds the
    /// schema; fails on a bad scope declaration or a field requiring an
    /// undeclared scope. It does no I/O.
    ///
    /// ```
    /// use async_graphql::Object;
    /// use tokengate::{requires_scope, Config, ScopeDef, TokenGate};
    ///
    /// struct BookQuery;
    ///
    /// #[Object]
    /// impl BookQuery {
    ///     #[graphql(directive = requires_scope::apply("books:read"))]
    ///     async fn books(&self) -> Vec<String> {
    ///         Vec::new()
    ///     }
    /// }
    ///
    /// // A field may only require a declared scope.
    /// assert!(TokenGate::new().query(BookQuery).prepare(Config::default()).is_err());
    ///
    /// let (config, schema) = TokenGate::new()
    ///     .query(BookQuery)
    ///     .scope(ScopeDef::new("books:read", "Read the catalogue"))
    ///     .prepare(Config::default())?;
    /// assert_eq!(config.scopes[0].name, "books:read");
    /// assert!(schema.sdl().contains("books: [String!]!"));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn prepare(self, mut config: Config) -> anyhow::Result<(Config, AppSchema)> {
        let mut scopes = self.scopes;
        scopes.append(&mut config.scopes);
        // Gateway mode: every scope the upstream's configuration names is
        // declared (administrators hold it), unless declared already.
        if let Some(upstream) = &config.upstream {
            let builtin = Scopes::new(&[]).map_err(anyhow::Error::msg)?;
            for name in upstream.scope_names() {
                if builtin.get(&name).is_none() && !scopes.iter().any(|d| d.name == name) {
                    scopes.push(ScopeDef::new(
                        name,
                        format!("Fields of the upstream API at {}.", upstream.url),
                    ));
                }
            }
        }
        config.scopes = scopes;
        config.migrations = self.migrations;
        let registry = Scopes::new(&config.scopes).map_err(anyhow::Error::msg)?;
        let schema = graphql::build_schema_with(
            self.query,
            self.mutation,
            self.subscription,
            &registry,
            self.data,
        )
        .map_err(anyhow::Error::msg)?;
        Ok((config, schema))
    }

    /// Serves on `config` until `shutdown` resolves (for tests and embedding;
    /// [`TokenGate::main`] is the usual way).
    pub async fn start(
        self,
        config: Config,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Running> {
        let (config, schema) = self.prepare(config)?;
        server::start(config, schema, shutdown).await
    }

    /// Runs a parsed command line: `serve` (the default) or another command.
    pub async fn run(self, cli: Cli) -> anyhow::Result<()> {
        let config = Config::load(&cli.config).map_err(anyhow::Error::msg)?;
        let (config, schema) = self.prepare(config)?;
        let _logs = telemetry::init(config.log_format);
        match cli.command.unwrap_or(cli::Command::Serve) {
            cli::Command::Serve => server::serve(config, schema).await,
            command => cli::run(config, command, &schema).await,
        }
    }

    /// The whole program: parses the command line (the same flags, environment
    /// and TOML file as `tokengate`), runs it on a new Tokio runtime, and
    /// reports an error on stderr with a failing exit status. Before any
    /// thread starts, caps malloc's arenas ([`crate::memory::limit_malloc_arenas`]);
    /// a program that builds its own runtime may call that first too.
    pub fn main(self) -> ExitCode {
        crate::memory::limit_malloc_arenas();
        let cli = Cli::parse();
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        match runtime.block_on(self.run(cli)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    }
}
