//! The server's lifecycle: bind, open the core, start the background tasks,
//! serve until shutdown, then finish in-flight requests and flush.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::app::{self, AppState};
use crate::config::Config;
use crate::core::Core;
use crate::graphql::AppSchema;
use crate::users;

/// A running server.
pub struct Running {
    /// The bound address (the actual port when the configured one was 0).
    pub addr: SocketAddr,
    /// The router's state, shared with the running server.
    pub state: AppState,
    /// The serving task: it ends after shutdown, once in-flight requests have
    /// finished and last-used times are flushed.
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds, opens the core, creates the first administrator on an empty
/// database, and serves until `shutdown` resolves; in-flight requests finish,
/// then last-used times are flushed.
pub async fn start(
    config: Config,
    schema: AppSchema,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let core = Arc::new(Core::open(config, addr).await?);
    // On an empty database: the first administrator (a one-time password on stderr).
    users::bootstrap_admin(
        &core.db,
        core.config.admin_email.as_deref(),
        core.config.admin_password.as_ref(),
    )
    .await?;
    crate::password::warm_up().await;
    let tasks = vec![
        tokio::spawn(flush_last_used(core.clone())),
        tokio::spawn(crate::core::revocations::run(core.clone())),
        tokio::spawn(reload_keys(core.clone())),
        tokio::spawn(announce_expiring(core.clone())),
        tokio::spawn(crate::webhooks::deliver::run(core.clone())),
    ];
    // Gateway mode: the schema forwards the upstream's root fields once they
    // are read (below, after serving has begun: the upstream may fetch this
    // server's JWKS to verify the introspection's assertion).
    let gateway = core
        .config
        .upstream
        .clone()
        .map(|upstream| crate::gateway::Gateway::new(upstream, &schema));
    let schema = match &gateway {
        Some(g) => schema.with_forwarder(g.clone()),
        None => schema,
    };
    let state = AppState::new(core.clone(), addr, schema);
    let router = app::router(state.clone());
    let abort = Arc::new(tokio::sync::Notify::new());
    let aborted = abort.clone();
    let shutdown = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = aborted.notified() => {}
        }
    };
    let served_core = core.clone();
    let handle = tokio::spawn(async move {
        let result = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        for task in tasks {
            task.abort();
        }
        served_core.last_used.flush(&served_core, true).await;
        result
    });
    // A root field on both sides stops the start; an upstream that does not
    // answer is tried again in the background (and /readyz says so).
    if let Some(gateway) = gateway {
        match gateway.refresh(&core).await {
            Ok(()) => {}
            Err(crate::gateway::RefreshError::Collision(e)) => {
                abort.notify_one();
                let _ = handle.await;
                anyhow::bail!(e)
            }
            Err(e) => {
                tracing::warn!(error = %e, "upstream schema not loaded; retrying in the background")
            }
        }
        let keeper = tokio::spawn(crate::gateway::keep_fresh(gateway, core.clone()));
        let served = handle;
        let handle = tokio::spawn(async move {
            let result = served.await;
            keeper.abort();
            result.unwrap_or_else(|e| Err(std::io::Error::other(e)))
        });
        return Ok(Running {
            addr,
            state,
            handle,
        });
    }
    Ok(Running {
        addr,
        state,
        handle,
    })
}

/// Writes batched last-used times every `--last-used-flush-interval`.
async fn flush_last_used(core: Arc<Core>) {
    let mut tick = tokio::time::interval(core.config.last_used_flush_interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        core.last_used.flush(&core, false).await;
    }
}

/// Re-reads signing keys and issuers every `--key-reload-interval`, so a
/// rotation or a new issuer recorded by another process is used for signing
/// and published in the JWKS (verification also reloads at once on an unknown
/// kid or issuer).
async fn reload_keys(core: Arc<Core>) {
    let mut tick = tokio::time::interval(core.config.key_reload_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = core.keys.reload(&core.db).await {
            tracing::warn!(error = %e, "could not re-read the signing keys");
        }
    }
}

/// Announces tokens entering their last day to `accessTokenEvents`
/// subscribers, and tokens entering a warning window or expiring to webhooks
/// (`webhooks::expiry`), every `--expiry-scan-interval` (from the start, so
/// tokens already inside a window are announced too).
async fn announce_expiring(core: Arc<Core>) {
    let mut tick = tokio::time::interval(core.config.expiry_scan_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = chrono::Utc::now();
        if let Err(e) = crate::webhooks::expiry::scan(&core, now).await {
            tracing::warn!(error = %e, "could not scan for expiring tokens (webhooks)");
        }
        let found = crate::tokens::expiring_between(
            &core.db,
            now,
            now + crate::core::live::EXPIRING_WITHIN,
        )
        .await;
        match found {
            Ok(rows) => {
                for (id, user_id) in rows {
                    core.token_events.publish(
                        crate::core::live::TokenChange::Expiring,
                        &id,
                        &user_id,
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not look for expiring tokens"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// `tokengate serve`: runs until SIGINT or SIGTERM.
pub async fn serve(config: Config, schema: AppSchema) -> anyhow::Result<()> {
    let running = start(config, schema, shutdown_signal()).await?;
    println!("listening on http://{}", running.addr);
    tracing::info!(addr = %running.addr, "listening");
    running.handle.await??;
    Ok(())
}
