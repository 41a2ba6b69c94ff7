//! Settings, merged once at start: flags > environment > TOML file > defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::auth::scopes::{ScopeDef, Scopes};
use crate::auth::secret::Secret;
use crate::auth::Role;
use crate::db::Migrations;

/// How log lines are written.
// The variants' doc comments are for rustdoc only: as per-value help, clap
// would switch every `--help` to its long layout (`help = None` keeps it short).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, coloured at a terminal.
    #[value(help = None::<&str>)]
    Text,
    /// One JSON object per line.
    #[value(help = None::<&str>)]
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 40m, 12h or 180d: {e}"))
}

/// The settings every command accepts (SPEC §1). `None` means "not given here".
#[derive(Args, Clone, Debug, Default)]
pub struct ConfigArgs {
    /// TOML file with any of the settings below (flags and environment win).
    #[arg(long, env = "TOKENGATE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "TOKENGATE_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// sea-orm database URL (sqlite:// or postgres://).
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// `iss` of issued tokens; defaults to `http://<listen address>`.
    #[arg(long, env = "TOKENGATE_ISSUER", global = true)]
    pub issuer: Option<String>,
    /// Absolute lifetime of a browser session.
    #[arg(long, env = "TOKENGATE_SESSION_LIFETIME", value_parser = parse_duration, global = true)]
    pub session_lifetime: Option<Duration>,
    /// Longest lifetime a token may be issued with.
    #[arg(long, env = "TOKENGATE_MAX_TOKEN_LIFETIME", value_parser = parse_duration, global = true)]
    pub max_token_lifetime: Option<Duration>,
    /// Allow tokens without an expiry.
    #[arg(long, env = "TOKENGATE_ALLOW_NON_EXPIRING_TOKENS", num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub allow_non_expiring_tokens: Option<bool>,
    /// Most active named tokens one user or service account may hold.
    #[arg(long, env = "TOKENGATE_MAX_TOKENS_PER_USER", global = true)]
    pub max_tokens_per_user: Option<u32>,
    /// Mark cookies `Secure`; defaults to false on loopback, true elsewhere.
    #[arg(long, env = "TOKENGATE_SECURE_COOKIES", num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub secure_cookies: Option<bool>,
    /// `text` for people, `json` for machines.
    #[arg(long, env = "TOKENGATE_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    /// How often batched last-used times are written.
    #[arg(long, env = "TOKENGATE_LAST_USED_FLUSH_INTERVAL", value_parser = parse_duration, global = true, hide = true)]
    pub last_used_flush_interval: Option<Duration>,
    /// How often other processes' revocations are polled for.
    #[arg(long, env = "TOKENGATE_REVOCATION_POLL_INTERVAL", value_parser = parse_duration, global = true, hide = true)]
    pub revocation_poll_interval: Option<Duration>,
    /// How often signing keys and issuers are re-read from the database.
    #[arg(long, env = "TOKENGATE_KEY_RELOAD_INTERVAL", value_parser = parse_duration, global = true, hide = true)]
    pub key_reload_interval: Option<Duration>,
    /// How often a WebSocket connection is pinged; one silent for two intervals is closed.
    #[arg(long, env = "TOKENGATE_WS_KEEPALIVE_INTERVAL", value_parser = parse_duration, global = true, hide = true)]
    pub ws_keepalive_interval: Option<Duration>,
    /// How often tokens entering their last day are looked for (`accessTokenEvents`' EXPIRING).
    #[arg(long, env = "TOKENGATE_EXPIRY_SCAN_INTERVAL", value_parser = parse_duration, global = true, hide = true)]
    pub expiry_scan_interval: Option<Duration>,
    /// Let webhooks target loopback, link-local and private addresses (tests, single-host setups).
    #[arg(long, env = "TOKENGATE_ALLOW_PRIVATE_WEBHOOK_TARGETS", num_args = 0..=1,
          default_missing_value = "true", value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub allow_private_webhook_targets: Option<bool>,
    /// Before expiry, when `token.expiring` webhooks fire: durations, comma-separated (default 7d,1d).
    #[arg(long, env = "TOKENGATE_TOKEN_EXPIRY_WARNINGS", value_parser = parse_durations, global = true)]
    pub token_expiry_warnings: Option<Durations>,
    /// How long a webhook receiver has to answer one delivery.
    #[arg(long, env = "TOKENGATE_WEBHOOK_TIMEOUT", value_parser = parse_duration, global = true)]
    pub webhook_timeout: Option<Duration>,
    /// The first wait before retrying a failed delivery (doubled per attempt).
    #[arg(long, env = "TOKENGATE_WEBHOOK_RETRY_BASE", value_parser = parse_duration, global = true, hide = true)]
    pub webhook_retry_base: Option<Duration>,
    /// How long after its event a delivery is retried before it is marked failed.
    #[arg(long, env = "TOKENGATE_WEBHOOK_RETRY_FOR", value_parser = parse_duration, global = true, hide = true)]
    pub webhook_retry_for: Option<Duration>,
    /// How often the delivery worker looks for deliveries queued by other processes or due again.
    #[arg(long, env = "TOKENGATE_WEBHOOK_POLL_INTERVAL", value_parser = parse_duration, global = true, hide = true)]
    pub webhook_poll_interval: Option<Duration>,
    /// Gateway mode: the URL of a GraphQL server to serve behind the guard (TOML: `[upstream]`).
    #[arg(long, env = "TOKENGATE_UPSTREAM", global = true)]
    pub upstream: Option<String>,
}

/// A list of durations, such as `--token-expiry-warnings 7d,1d`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durations(pub Vec<Duration>);

fn parse_durations(s: &str) -> Result<Durations, String> {
    s.split(',')
        .map(|p| parse_duration(p.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map(Durations)
}

/// The TOML file's shape: the same names as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    database_url: Option<String>,
    issuer: Option<String>,
    session_lifetime: Option<String>,
    max_token_lifetime: Option<String>,
    allow_non_expiring_tokens: Option<bool>,
    max_tokens_per_user: Option<u32>,
    secure_cookies: Option<bool>,
    log_format: Option<LogFormat>,
    last_used_flush_interval: Option<String>,
    revocation_poll_interval: Option<String>,
    key_reload_interval: Option<String>,
    ws_keepalive_interval: Option<String>,
    expiry_scan_interval: Option<String>,
    allow_private_webhook_targets: Option<bool>,
    token_expiry_warnings: Option<Vec<String>>,
    webhook_timeout: Option<String>,
    webhook_retry_base: Option<String>,
    webhook_retry_for: Option<String>,
    webhook_poll_interval: Option<String>,
    upstream: Option<FileUpstream>,
    #[serde(default)]
    scopes: Vec<FileScope>,
}

/// The `[upstream]` table of the TOML file (SPEC §8).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUpstream {
    url: Option<String>,
    audience: Option<String>,
    timeout: Option<String>,
    refresh: Option<String>,
    default_query_scope: Option<String>,
    default_mutation_scope: Option<String>,
    #[serde(default)]
    scopes: std::collections::BTreeMap<String, String>,
}

/// Gateway mode (SPEC §8): the GraphQL server tokengate serves behind its guard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// Where its GraphQL endpoint is (http or https).
    pub url: String,
    /// `aud` of the assertions it receives (default: its URL).
    pub audience: String,
    /// How long one forwarded request may take (default 10 seconds).
    pub timeout: Duration,
    /// How often its schema is read again (default 5 minutes).
    pub refresh: Duration,
    /// The scope of query fields not listed in `scopes` (default `api:read`).
    pub default_query_scope: String,
    /// The scope of mutation fields not listed in `scopes` (default `api:write`).
    pub default_mutation_scope: String,
    /// Scopes by root field: `"Query.orders" = "orders:read"`.
    pub scopes: std::collections::BTreeMap<String, String>,
}

impl Upstream {
    /// The scope an upstream root field needs (`root` is `Query` or `Mutation`).
    pub fn scope_of(&self, root: &str, field: &str) -> &str {
        match self.scopes.get(&format!("{root}.{field}")) {
            Some(s) => s,
            None if root == "Mutation" => &self.default_mutation_scope,
            None => &self.default_query_scope,
        }
    }

    /// Every scope the configuration names, each once.
    pub fn scope_names(&self) -> Vec<String> {
        let mut names = vec![
            self.default_query_scope.clone(),
            self.default_mutation_scope.clone(),
        ];
        for s in self.scopes.values() {
            if !names.contains(s) {
                names.push(s.clone());
            }
        }
        names.dedup();
        names
    }

    fn from_parts(url: String, file: FileUpstream) -> Result<Upstream, String> {
        let duration = |v: &Option<String>, d: Duration| {
            v.as_deref()
                .map(parse_duration)
                .transpose()
                .map(|x| x.unwrap_or(d))
        };
        let parsed = reqwest::Url::parse(&url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                format!(
                    "upstream `{url}` is not an http(s) URL such as http://localhost:4000/graphql"
                )
            })?;
        for key in file.scopes.keys() {
            let ok = key.split_once('.').is_some_and(|(root, field)| {
                matches!(root, "Query" | "Mutation") && !field.is_empty()
            });
            if !ok {
                return Err(format!(
                    "upstream.scopes: `{key}` is not a root field such as \"Query.orders\" or \"Mutation.placeOrder\""
                ));
            }
        }
        Ok(Upstream {
            audience: file.audience.unwrap_or_else(|| parsed.to_string()),
            url: parsed.to_string(),
            timeout: duration(&file.timeout, Duration::from_secs(10))?,
            refresh: duration(&file.refresh, Duration::from_secs(300))?,
            default_query_scope: file
                .default_query_scope
                .unwrap_or_else(|| "api:read".into()),
            default_mutation_scope: file
                .default_mutation_scope
                .unwrap_or_else(|| "api:write".into()),
            scopes: file.scopes,
        })
    }
}

/// A `[[scopes]]` table of the TOML file (SPEC §7).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScope {
    name: String,
    description: String,
    #[serde(default)]
    roles: Vec<String>,
}

impl FileScope {
    fn into_def(self) -> Result<ScopeDef, String> {
        let roles = self
            .roles
            .iter()
            .map(|r| match r.as_str() {
                "admin" => Ok(Role::Admin),
                "member" => Ok(Role::Member),
                "service" => Ok(Role::Service),
                other => Err(format!(
                    "scope `{}`: unknown role `{other}`; roles are admin, member and service",
                    self.name
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ScopeDef {
            name: self.name,
            description: self.description,
            roles,
        })
    }
}

/// Resolved settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:8080`); port 0 picks a free port.
    pub listen: SocketAddr,
    /// sea-orm database URL, `sqlite://…` or `postgres://…` (default
    /// `sqlite://tokengate.db?mode=rwc`).
    pub database_url: String,
    /// A configured issuer; `None` keeps the deployment's (chosen at its first
    /// start as `http://<listen address>` and stored in the database).
    pub issuer: Option<String>,
    /// Absolute lifetime of a browser session, never extended (default 40 minutes).
    pub session_lifetime: Duration,
    /// Longest lifetime a token may be issued with (default 180 days).
    pub max_token_lifetime: Duration,
    /// Whether tokens may be issued without an expiry (default `false`).
    pub allow_non_expiring_tokens: bool,
    /// Most active named tokens per user (`--max-tokens-per-user`, default 100).
    pub max_tokens_per_user: u32,
    /// `None`: decided from the listen address.
    pub secure_cookies: Option<bool>,
    /// How log lines are written (default `Text`).
    pub log_format: LogFormat,
    /// How often batched last-used times are written (default 15 seconds).
    pub last_used_flush_interval: Duration,
    /// How often other processes' revocations are polled for (PostgreSQL also notifies).
    pub revocation_poll_interval: Duration,
    /// How often signing keys and issuers are re-read (another process may rotate).
    pub key_reload_interval: Duration,
    /// How often WebSocket connections are pinged (`--ws-keepalive-interval`).
    pub ws_keepalive_interval: Duration,
    /// How often tokens entering their last day are looked for (`--expiry-scan-interval`).
    pub expiry_scan_interval: Duration,
    /// Whether webhooks may target private addresses (`--allow-private-webhook-targets`).
    pub allow_private_webhook_targets: bool,
    /// How long before expiry `token.expiring` fires (default 7 days and 1 day).
    pub token_expiry_warnings: Vec<Duration>,
    /// How long a receiver has to answer (`--webhook-timeout`, default 10 seconds).
    pub webhook_timeout: Duration,
    /// The first retry's wait, doubled per attempt (default 5 seconds).
    pub webhook_retry_base: Duration,
    /// How long deliveries are retried (default a day).
    pub webhook_retry_for: Duration,
    /// How often the delivery worker polls (default 1 second).
    pub webhook_poll_interval: Duration,
    /// Gateway mode: the upstream GraphQL server (`--upstream`, `[upstream]`).
    pub upstream: Option<Upstream>,
    /// First administrator's email (`TOKENGATE_ADMIN_EMAIL`), used on an empty database.
    pub admin_email: Option<String>,
    /// First administrator's password (`TOKENGATE_ADMIN_PASSWORD`).
    pub admin_password: Option<Secret>,
    /// Scopes declared beyond tokengate's: the TOML file's `[[scopes]]`, then
    /// those an application adds with `TokenGate::scope`.
    pub scopes: Vec<ScopeDef>,
    /// Migrations applied at start: tokengate's and the application's.
    pub migrations: Migrations,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://tokengate.db?mode=rwc".into(),
            issuer: None,
            session_lifetime: Duration::from_secs(40 * 60),
            max_token_lifetime: Duration::from_secs(180 * 24 * 3600),
            allow_non_expiring_tokens: false,
            max_tokens_per_user: 100,
            secure_cookies: None,
            log_format: LogFormat::Text,
            last_used_flush_interval: Duration::from_secs(15),
            revocation_poll_interval: Duration::from_millis(500),
            key_reload_interval: Duration::from_secs(60),
            ws_keepalive_interval: Duration::from_secs(15),
            expiry_scan_interval: Duration::from_secs(60),
            allow_private_webhook_targets: false,
            token_expiry_warnings: vec![
                Duration::from_secs(7 * 24 * 3600),
                Duration::from_secs(24 * 3600),
            ],
            webhook_timeout: Duration::from_secs(10),
            webhook_retry_base: Duration::from_secs(5),
            webhook_retry_for: Duration::from_secs(24 * 3600),
            webhook_poll_interval: Duration::from_secs(1),
            upstream: None,
            admin_email: None,
            admin_password: None,
            scopes: Vec::new(),
            migrations: Migrations::default(),
        }
    }
}

impl Config {
    /// Merges flags and environment (already folded together by clap) over the
    /// optional TOML file over the defaults.
    pub fn load(args: &ConfigArgs) -> Result<Config, String> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| format!("config file {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let file_duration = |v: &Option<String>| v.as_deref().map(parse_duration).transpose();
        let d = Config::default();
        let config = Config {
            listen: args.listen.or(file.listen).unwrap_or(d.listen),
            database_url: args
                .database_url
                .clone()
                .or(file.database_url)
                .unwrap_or(d.database_url),
            issuer: args.issuer.clone().or(file.issuer),
            session_lifetime: args
                .session_lifetime
                .or(file_duration(&file.session_lifetime)?)
                .unwrap_or(d.session_lifetime),
            max_token_lifetime: args
                .max_token_lifetime
                .or(file_duration(&file.max_token_lifetime)?)
                .unwrap_or(d.max_token_lifetime),
            allow_non_expiring_tokens: args
                .allow_non_expiring_tokens
                .or(file.allow_non_expiring_tokens)
                .unwrap_or(d.allow_non_expiring_tokens),
            max_tokens_per_user: args
                .max_tokens_per_user
                .or(file.max_tokens_per_user)
                .unwrap_or(d.max_tokens_per_user),
            secure_cookies: args.secure_cookies.or(file.secure_cookies),
            log_format: args.log_format.or(file.log_format).unwrap_or(d.log_format),
            last_used_flush_interval: args
                .last_used_flush_interval
                .or(file_duration(&file.last_used_flush_interval)?)
                .unwrap_or(d.last_used_flush_interval),
            revocation_poll_interval: args
                .revocation_poll_interval
                .or(file_duration(&file.revocation_poll_interval)?)
                .unwrap_or(d.revocation_poll_interval),
            key_reload_interval: args
                .key_reload_interval
                .or(file_duration(&file.key_reload_interval)?)
                .unwrap_or(d.key_reload_interval),
            ws_keepalive_interval: args
                .ws_keepalive_interval
                .or(file_duration(&file.ws_keepalive_interval)?)
                .unwrap_or(d.ws_keepalive_interval),
            expiry_scan_interval: args
                .expiry_scan_interval
                .or(file_duration(&file.expiry_scan_interval)?)
                .unwrap_or(d.expiry_scan_interval),
            allow_private_webhook_targets: args
                .allow_private_webhook_targets
                .or(file.allow_private_webhook_targets)
                .unwrap_or(d.allow_private_webhook_targets),
            token_expiry_warnings: match (&args.token_expiry_warnings, &file.token_expiry_warnings)
            {
                (Some(Durations(v)), _) => v.clone(),
                (None, Some(v)) => v
                    .iter()
                    .map(|s| parse_duration(s))
                    .collect::<Result<_, _>>()?,
                (None, None) => d.token_expiry_warnings,
            },
            webhook_timeout: args
                .webhook_timeout
                .or(file_duration(&file.webhook_timeout)?)
                .unwrap_or(d.webhook_timeout),
            webhook_retry_base: args
                .webhook_retry_base
                .or(file_duration(&file.webhook_retry_base)?)
                .unwrap_or(d.webhook_retry_base),
            webhook_retry_for: args
                .webhook_retry_for
                .or(file_duration(&file.webhook_retry_for)?)
                .unwrap_or(d.webhook_retry_for),
            webhook_poll_interval: args
                .webhook_poll_interval
                .or(file_duration(&file.webhook_poll_interval)?)
                .unwrap_or(d.webhook_poll_interval),
            upstream: {
                let mut table = file.upstream.unwrap_or_default();
                match args.upstream.clone().or(table.url.take()) {
                    Some(url) => Some(Upstream::from_parts(url, table)?),
                    None if table.audience.is_some() || !table.scopes.is_empty() => {
                        return Err("[upstream] needs a url (or --upstream)".into())
                    }
                    None => None,
                }
            },
            admin_email: std::env::var("TOKENGATE_ADMIN_EMAIL")
                .ok()
                .filter(|v| !v.is_empty()),
            admin_password: std::env::var("TOKENGATE_ADMIN_PASSWORD")
                .ok()
                .filter(|v| !v.is_empty())
                .map(Secret::new),
            scopes: file
                .scopes
                .into_iter()
                .map(FileScope::into_def)
                .collect::<Result<_, _>>()
                .map_err(|e| match &args.config {
                    Some(path) => format!("config file {}: {e}", path.display()),
                    None => e,
                })?,
            migrations: Migrations::default(),
        };
        config.check()?;
        Ok(config)
    }

    /// Refuses settings out of range, so no time arithmetic later can overflow,
    /// and an issuer that is not an http(s) URL.
    pub fn check(&self) -> Result<(), String> {
        const DAY: u64 = 24 * 3600;
        let bounds = [
            (
                "--session-lifetime",
                self.session_lifetime,
                Duration::from_secs(1),
                Duration::from_secs(365 * DAY),
            ),
            (
                "--max-token-lifetime",
                self.max_token_lifetime,
                Duration::from_secs(1),
                Duration::from_secs(MAX_TOKEN_LIFETIME_DAYS * DAY),
            ),
            (
                "--last-used-flush-interval",
                self.last_used_flush_interval,
                Duration::from_millis(10),
                Duration::from_secs(DAY),
            ),
            (
                "--revocation-poll-interval",
                self.revocation_poll_interval,
                Duration::from_millis(10),
                Duration::from_secs(DAY),
            ),
            (
                "--key-reload-interval",
                self.key_reload_interval,
                Duration::from_millis(10),
                Duration::from_secs(DAY),
            ),
            (
                "--expiry-scan-interval",
                self.expiry_scan_interval,
                Duration::from_millis(10),
                Duration::from_secs(DAY),
            ),
            (
                "--webhook-timeout",
                self.webhook_timeout,
                Duration::from_millis(100),
                Duration::from_secs(300),
            ),
            (
                "--webhook-retry-base",
                self.webhook_retry_base,
                Duration::from_millis(10),
                Duration::from_secs(3600),
            ),
            (
                "--webhook-retry-for",
                self.webhook_retry_for,
                Duration::from_secs(1),
                Duration::from_secs(7 * DAY),
            ),
            (
                "--webhook-poll-interval",
                self.webhook_poll_interval,
                Duration::from_millis(10),
                Duration::from_secs(3600),
            ),
            (
                "--ws-keepalive-interval",
                self.ws_keepalive_interval,
                Duration::from_millis(10),
                Duration::from_secs(3600),
            ),
        ];
        for (flag, value, min, max) in bounds {
            if value < min || value > max {
                return Err(format!(
                    "{flag} {} is out of range: give a duration from {} to {}",
                    humantime::format_duration(value),
                    humantime::format_duration(min),
                    humantime::format_duration(max),
                ));
            }
        }
        if let Some(issuer) = &self.issuer {
            let scheme_ok = issuer.starts_with("https://") || issuer.starts_with("http://");
            if !scheme_ok || issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "--issuer `{issuer}` is not an http(s) URL such as https://auth.example.com"
                ));
            }
        }
        if !(1..=100_000).contains(&self.max_tokens_per_user) {
            return Err(format!(
                "--max-tokens-per-user {} is out of range: give 1 to 100000",
                self.max_tokens_per_user
            ));
        }
        if self.token_expiry_warnings.len() > 8
            || self
                .token_expiry_warnings
                .iter()
                .any(|w| *w < Duration::from_secs(60) || *w > Duration::from_secs(365 * DAY))
        {
            return Err(
                "--token-expiry-warnings: give at most 8 durations, each from 1m to 365d, \
                 such as 7d,1d"
                    .into(),
            );
        }
        Scopes::new(&self.scopes)?;
        Ok(())
    }
}

/// The longest `--max-token-lifetime` accepted (100 years).
pub const MAX_TOKEN_LIFETIME_DAYS: u64 = 36_500;
