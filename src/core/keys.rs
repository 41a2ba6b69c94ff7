//! The deployment's signing identity, shared by every process on one database:
//! Ed25519 key pairs in the `signing_keys` table (the newest unretired key
//! signs; every key still in its verification window verifies;
//! `/.well-known/jwks.json` publishes them) and the issuers in the `issuers`
//! table (the most recently chosen goes into new tokens; every one verifies).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use entity::{issuer, signing_key};
use jsonwebtoken::DecodingKey;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::json;

use crate::error::AppError;

/// The one algorithm tokengate signs with.
pub const ALGORITHM: &str = "EdDSA";

/// A key that verifies.
#[derive(Clone)]
pub struct VerifyingKey {
    /// The key as `jsonwebtoken` verifies with it.
    pub decoding: DecodingKey,
    /// The raw Ed25519 public key (32 bytes), as published in the JWK Set.
    pub public: Vec<u8>,
}

struct Loaded {
    /// `iss` of new tokens.
    issuer: String,
    /// Every issuer the deployment has had: tokens carrying any of them verify.
    issuers: Vec<String>,
    active_kid: String,
    /// The active private key, parsed once per load.
    signing: Option<SigningKey>,
    verifying: HashMap<String, VerifyingKey>,
    loaded_at: Instant,
}

/// The keys and issuers this process signs and verifies with, reloaded from the
/// database periodically and when a token names a kid or an issuer it has not
/// seen (another process rotated or chose a new issuer).
pub struct KeyRing {
    loaded: RwLock<Loaded>,
    /// One reload at a time: requests naming unknown kids wait for the reload
    /// under way instead of each starting one.
    reloading: tokio::sync::Mutex<()>,
    /// How long a retired key keeps verifying (the longest a token can live),
    /// `None` when non-expiring tokens are allowed: retired keys verify forever.
    verify_window: Option<Duration>,
}

fn generate() -> Result<signing_key::ActiveModel, AppError> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let der = key.to_pkcs8_der().map_err(AppError::internal)?;
    let public = key.verifying_key().to_bytes().to_vec();
    // kid: a short fingerprint of the public key (RFC 7638 in spirit).
    let kid = URL_SAFE_NO_PAD.encode(&crate::auth::secret::sha256(&public)[..12]);
    Ok(signing_key::ActiveModel {
        kid: Set(kid),
        algorithm: Set(ALGORITHM.into()),
        private_key: Set(der.as_bytes().to_vec()),
        public_key: Set(public),
        created_at: Set(Utc::now()),
        retired_at: Set(None),
    })
}

/// Makes a new active key and retires the others. Returns the new kid.
pub async fn rotate(db: &DatabaseConnection) -> Result<String, AppError> {
    let model = generate()?;
    let kid = model.kid.clone().unwrap();
    signing_key::Entity::update_many()
        .col_expr(
            signing_key::Column::RetiredAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(signing_key::Column::RetiredAt.is_null())
        .exec(db)
        .await?;
    model.insert(db).await?;
    Ok(kid)
}

/// Records the deployment's issuer. On an empty table the configured issuer, or
/// else `default` (`http://<listen address>` of this first start), becomes it;
/// afterwards only a configured issuer that differs from the current one is
/// recorded, as the new current one (earlier ones keep verifying).
pub async fn choose_issuer(
    db: &DatabaseConnection,
    configured: Option<&str>,
    default: &str,
) -> Result<(), AppError> {
    let current = issuer::Entity::find()
        .order_by_desc(issuer::Column::ChosenAt)
        .one(db)
        .await?;
    let chosen = match (configured, current) {
        (Some(wanted), Some(current)) if wanted == current.issuer => return Ok(()),
        (None, Some(_)) => return Ok(()),
        (Some(wanted), _) => wanted,
        (None, None) => default,
    };
    // Upsert: two processes starting at once may choose together; the later
    // write simply becomes the current issuer, and both verify.
    issuer::Entity::insert(issuer::ActiveModel {
        issuer: Set(chosen.to_owned()),
        chosen_at: Set(Utc::now()),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(issuer::Column::Issuer)
            .update_column(issuer::Column::ChosenAt)
            .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(())
}

async fn load(
    db: &DatabaseConnection,
    verify_window: Option<Duration>,
) -> Result<Loaded, AppError> {
    let issuers: Vec<String> = issuer::Entity::find()
        .order_by_desc(issuer::Column::ChosenAt)
        .all(db)
        .await?
        .into_iter()
        .map(|i| i.issuer)
        .collect();
    let current_issuer = issuers.first().cloned().ok_or_else(|| {
        AppError::internal("the deployment has no issuer; choose_issuer runs first")
    })?;
    let mut rows = signing_key::Entity::find()
        .order_by_desc(signing_key::Column::CreatedAt)
        .all(db)
        .await?;
    if !rows.iter().any(|r| r.retired_at.is_none()) {
        // First start (or every key retired by hand): make one. Two processes
        // starting at once may both do so; the newest simply wins as signer.
        rotate(db).await?;
        rows = signing_key::Entity::find()
            .order_by_desc(signing_key::Column::CreatedAt)
            .all(db)
            .await?;
    }
    let active = rows
        .iter()
        .find(|r| r.retired_at.is_none())
        .ok_or_else(|| AppError::internal("no active signing key"))?;
    let now = Utc::now();
    let verifying = rows
        .iter()
        .filter(|r| r.algorithm == ALGORITHM)
        .filter(|r| match (r.retired_at, verify_window) {
            (None, _) | (Some(_), None) => true,
            (Some(retired), Some(window)) => chrono::Duration::from_std(window)
                .ok()
                .and_then(|w| retired.checked_add_signed(w))
                .is_none_or(|until| until > now),
        })
        .map(|r| {
            let key = VerifyingKey {
                decoding: DecodingKey::from_ed_der(&r.public_key),
                public: r.public_key.clone(),
            };
            (r.kid.clone(), key)
        })
        .collect();
    Ok(Loaded {
        issuer: current_issuer,
        issuers,
        active_kid: active.kid.clone(),
        signing: {
            use ed25519_dalek::pkcs8::DecodePrivateKey;
            SigningKey::from_pkcs8_der(&active.private_key).ok()
        },
        verifying,
        loaded_at: Instant::now(),
    })
}

impl KeyRing {
    /// Loads the keys, creating the first one on an empty database.
    pub async fn load(
        db: &DatabaseConnection,
        verify_window: Option<Duration>,
    ) -> Result<KeyRing, AppError> {
        Ok(KeyRing {
            loaded: RwLock::new(load(db, verify_window).await?),
            reloading: tokio::sync::Mutex::new(()),
            verify_window,
        })
    }

    /// Re-reads the keys from the database.
    pub async fn reload(&self, db: &DatabaseConnection) -> Result<(), AppError> {
        let fresh = load(db, self.verify_window).await?;
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// Reloads unless that was done within `min_age` (bounds reloads caused by
    /// tokens with made-up kids).
    pub async fn reload_if_older(
        &self,
        db: &DatabaseConnection,
        min_age: Duration,
    ) -> Result<(), AppError> {
        let age = || {
            self.loaded
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .loaded_at
                .elapsed()
        };
        if age() < min_age {
            return Ok(());
        }
        let _one_at_a_time = self.reloading.lock().await;
        // Another request may have reloaded while this one waited.
        if age() >= min_age {
            self.reload(db).await?;
        }
        Ok(())
    }

    /// `iss` for new tokens: the deployment's current issuer.
    pub fn issuer(&self) -> String {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .issuer
            .clone()
    }

    /// Every issuer whose tokens verify.
    pub fn issuers(&self) -> Vec<String> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .issuers
            .clone()
    }

    /// A compact JWS (EdDSA) of `header` and `claims` with the active key,
    /// its `kid` and `alg` set here: one scalar multiplication per signature
    /// (the key is parsed once per load).
    pub fn sign_compact(
        &self,
        mut header: serde_json::Map<String, serde_json::Value>,
        claims: &impl serde::Serialize,
    ) -> Result<String, AppError> {
        use ed25519_dalek::Signer;
        let (kid, key) = {
            let l = self.loaded.read().unwrap_or_else(|e| e.into_inner());
            (l.active_kid.clone(), l.signing.clone())
        };
        let key = key.ok_or_else(|| AppError::internal("the active signing key does not parse"))?;
        header.insert("alg".into(), json!("EdDSA"));
        header.insert("kid".into(), json!(kid));
        let mut out =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(AppError::internal)?);
        out.push('.');
        out.push_str(
            &URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(AppError::internal)?),
        );
        let signature = key.sign(out.as_bytes());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        Ok(out)
    }

    /// The key that verifies tokens naming `kid`; `None` when this process has
    /// not loaded it (the caller may reload and ask again).
    pub fn verifier(&self, kid: &str) -> Option<VerifyingKey> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .verifying
            .get(kid)
            .cloned()
    }

    /// The JWK Set of every verifying key (RFC 7517, OKP keys per RFC 8037).
    pub fn jwks(&self) -> serde_json::Value {
        let l = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let mut kids: Vec<_> = l.verifying.keys().collect();
        kids.sort();
        let keys: Vec<_> = kids
            .into_iter()
            .map(|kid| {
                json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(&l.verifying[kid].public),
                    "kid": kid,
                    "use": "sig",
                    "alg": ALGORITHM,
                })
            })
            .collect();
        json!({ "keys": keys })
    }
}
