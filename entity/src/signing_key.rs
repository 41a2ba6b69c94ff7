//! Keys that sign access tokens. The newest unretired key signs; every key
//! verifies until the tokens it signed have expired.

use sea_orm::entity::prelude::*;

/// A row of `signing_keys`: one Ed25519 key pair. `Debug` omits the key bytes.
#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    /// The JWT header's `kid`: base64url of the first 12 bytes of the public
    /// key's SHA-256.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// JOSE algorithm name, `EdDSA`.
    pub algorithm: String,
    /// PKCS#8 DER of the private key.
    pub private_key: Vec<u8>,
    /// Raw public key bytes (32 for Ed25519).
    pub public_key: Vec<u8>,
    /// When it was generated.
    pub created_at: DateTimeUtc,
    /// When a newer key replaced it for signing; `None` for the active key.
    /// A retired key keeps verifying until the tokens it signed have expired.
    pub retired_at: Option<DateTimeUtc>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// The table's relations: none.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
