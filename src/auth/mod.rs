//! Authentication: who is calling, proven how, allowed what.

pub mod authority;
pub mod principal;
pub mod scopes;
pub mod secret;

pub use authority::{may_act_on_others_tokens, may_act_on_tokens, TokenAccess};
pub use principal::{Credential, Principal, Role};
pub use scopes::{Scope, ScopeSet};
