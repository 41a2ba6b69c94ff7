//! The command line: clap definitions and the runners, which call the same
//! services as the API (no HTTP in between).

use std::io::{BufRead, IsTerminal};

use clap::{Parser, Subcommand};
use sea_orm::DatabaseConnection;

use anyhow::{anyhow, bail, Result};

use crate::auth::secret::Secret;
use crate::auth::Role;
use crate::config::{Config, ConfigArgs};
use crate::core::Core;
use crate::graphql::AppSchema;
use crate::{db, tokens, users};

/// The parsed command line: settings and an optional subcommand.
#[derive(Parser, Debug)]
#[command(
    name = "tokengate",
    version,
    about = "A GraphQL API server with token management built in"
)]
pub struct Cli {
    /// The settings every command accepts.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// What to do; `None` serves.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// tokengate's commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `tokengate user …`.
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user; the password is read from a prompt, or from stdin when piped.
    Add {
        /// The new user's email, which they sign in with.
        #[arg(long)]
        email: String,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
    },
}

/// `tokengate token …`.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Issue a token for a user and print it once.
    Issue {
        /// Email of the user who will own the token.
        #[arg(long)]
        email: String,
        /// The token's name; issuing under a name in use revokes the active token.
        #[arg(long, default_value = "default")]
        name: String,
        /// Lifetime, such as 30d or 12h (`never` where non-expiring tokens are allowed).
        #[arg(long)]
        expires: String,
        /// A scope to grant (repeat for more); all of the user's when left out.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List a user's tokens (never the tokens themselves).
    List {
        /// Email of the user whose tokens to list.
        #[arg(long)]
        email: String,
        /// Include revoked and expired tokens.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id, as `token list` shows it.
        id: String,
    },
    /// Rotate a token by id: a new token with its name, scopes and length of
    /// life is printed once; the old one works for the grace period, then is revoked.
    Rotate {
        /// The token's id, as `token list` shows it.
        id: String,
        /// How long the old token keeps working, such as 10m (at most 24h).
        #[arg(long, default_value = "0s")]
        grace: String,
    },
}

/// `tokengate keys …`.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a new signing key active; old keys keep verifying their tokens.
    Rotate,
}

fn read_password() -> Result<Secret> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    Ok(Secret::new(password))
}

async fn connect(config: &Config) -> Result<DatabaseConnection> {
    let conn = db::connect(&config.database_url).await?;
    db::migrate(&conn, config.migrations).await?;
    Ok(conn)
}

/// Runs a command other than `serve` (the server is above this layer: see
/// [`crate::run`]).
pub async fn run(config: Config, command: Command, schema: &AppSchema) -> Result<()> {
    match command {
        Command::Serve => bail!("`serve` is run by tokengate::run, not by the command layer"),
        Command::Migrate => {
            connect(&config).await?;
            println!("migrations applied");
        }
        Command::Schema => print!("{}", schema.sdl()),
        Command::User(UserCommand::Add { email, admin }) => {
            let conn = connect(&config).await?;
            let password = read_password()?;
            let role = if admin { Role::Admin } else { Role::Member };
            let user = users::create(&conn, &email, &password, role, None, None).await?;
            println!("created {} {} ({})", user.role, user.email, user.id);
        }
        Command::Token(cmd) => run_token(config, cmd).await?,
        Command::Keys(KeysCommand::Rotate) => {
            let conn = connect(&config).await?;
            // On a fresh database this makes the first key; otherwise it retires
            // the active one (which keeps verifying).
            let kid = crate::core::keys::rotate(&conn).await?;
            println!(
                "new signing key {kid} is active; earlier keys verify until their tokens expire"
            );
        }
    }
    Ok(())
}

async fn run_token(config: Config, cmd: TokenCommand) -> Result<()> {
    let listen = config.listen;
    let core = Core::open(config, listen).await?;
    match cmd {
        TokenCommand::Issue {
            email,
            name,
            expires,
            scopes,
        } => {
            let user = users::find_by_email(&core.db, &users::normalize_email(&email)?)
                .await?
                .ok_or_else(|| anyhow!("no user with email {email}"))?;
            let role = user.role;
            let expiration_time = if expires == "never" {
                None
            } else {
                let d = humantime::parse_duration(&expires).map_err(|e| {
                    anyhow!("--expires `{expires}` is not a duration like 30d or 12h: {e}")
                })?;
                let secs = i64::try_from(d.as_secs()).ok();
                let at = secs.and_then(|s| chrono::Utc::now().timestamp().checked_add(s));
                Some(at.ok_or_else(|| anyhow!("--expires `{expires}` is too long"))?)
            };
            let principal = crate::auth::Principal::of_user(
                &user,
                core.scopes.of_role(role),
                crate::auth::Credential::Operator,
            );
            let req = tokens::IssueRequest {
                name,
                expiration_time,
                scopes: (!scopes.is_empty()).then_some(scopes),
            };
            let issued = tokens::issue(&core, &principal, req, None).await?;
            eprintln!(
                "issued token {} ({}) for {}, scopes: {}; it is shown once:",
                issued.record.id, issued.record.name, user.email, issued.record.scopes
            );
            println!("{}", issued.token.expose());
        }
        TokenCommand::List { email, all } => {
            let user = users::find_by_email(&core.db, &users::normalize_email(&email)?)
                .await?
                .ok_or_else(|| anyhow!("no user with email {email}"))?;
            let now = chrono::Utc::now();
            println!(
                "{:<36}  {:<20}  {:<8}  {:<25}  SCOPES",
                "ID", "NAME", "STATUS", "EXPIRES"
            );
            for t in tokens::list(&core.db, &user.id, all, &Default::default()).await? {
                let status = format!("{:?}", tokens::status(&t, now)).to_uppercase();
                let expires = t
                    .expires_at
                    .map(|e| e.to_rfc3339())
                    .unwrap_or_else(|| "never".into());
                let scopes = core
                    .scopes
                    .to_space_separated(core.scopes.parse_stored(&t.scopes));
                println!(
                    "{:<36}  {:<20}  {:<8}  {:<25}  {}",
                    t.id, t.name, status, expires, scopes
                );
            }
        }
        TokenCommand::Rotate { id, grace } => {
            let grace = humantime::parse_duration(&grace)
                .map_err(|e| anyhow!("--grace `{grace}` is not a duration like 10m or 1h: {e}"))?;
            let row = tokens::find(&core.db, &id)
                .await?
                .ok_or_else(|| anyhow!("no token with id {id}"))?;
            let owner = users::find(&core.db, &row.user_id)
                .await?
                .ok_or_else(|| anyhow!("the token's owner no longer exists"))?;
            // The operator acts as the token's owner.
            let principal = crate::auth::Principal::of_user(
                &owner,
                core.scopes.of_role(owner.role),
                crate::auth::Credential::Operator,
            );
            let secs = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
            let issued = tokens::rotate(&core, &principal, Some(&id), secs, None).await?;
            eprintln!(
                "rotated {} ({}) into {}; the old token works for {}; the new one is shown once:",
                id,
                issued.record.name,
                issued.record.id,
                humantime::format_duration(grace)
            );
            println!("{}", issued.token.expose());
        }
        TokenCommand::Revoke { id } => {
            let t = tokens::revoke_by_id(&core, &id).await?;
            println!("revoked {} ({})", t.id, t.name);
        }
    }
    Ok(())
}
