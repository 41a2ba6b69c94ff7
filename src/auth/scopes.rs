//! The scopes of SPEC §4 and small set arithmetic over them.

use std::fmt;

use super::principal::Role;

/// One permission a credential may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    MeRead,
    TokensRead,
    TokensWrite,
    UsersRead,
    UsersWrite,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::MeRead,
        Scope::TokensRead,
        Scope::TokensWrite,
        Scope::UsersRead,
        Scope::UsersWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::MeRead => "me:read",
            Scope::TokensRead => "tokens:read",
            Scope::TokensWrite => "tokens:write",
            Scope::UsersRead => "users:read",
            Scope::UsersWrite => "users:write",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of scopes, as a bit set.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(u8);

impl ScopeSet {
    pub const EMPTY: ScopeSet = ScopeSet(0);

    /// Every scope a role may hold or grant: administrators all; members and
    /// service accounts all but `users:*` (managing users and service accounts
    /// is an administrator's, so a `users:*` scope always means the admin role).
    /// A service account is further bounded by its account's scopes.
    pub fn of_role(role: Role) -> ScopeSet {
        match role {
            Role::Admin => ScopeSet::all(),
            Role::Member | Role::Service => ScopeSet::all()
                .iter()
                .filter(|s| !matches!(s, Scope::UsersRead | Scope::UsersWrite))
                .collect(),
        }
    }

    pub fn all() -> ScopeSet {
        Scope::ALL.into_iter().collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_subset_of(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Parses scope names; on an unknown name, returns it.
    pub fn parse_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<ScopeSet, String> {
        names
            .into_iter()
            .filter(|n| !n.is_empty())
            .map(|n| Scope::parse(n).ok_or_else(|| n.to_owned()))
            .collect()
    }

    /// Parses the space-separated form stored with tokens and carried in `scope`.
    pub fn parse_space_separated(s: &str) -> Result<ScopeSet, String> {
        ScopeSet::parse_names(s.split(' '))
    }

    pub fn names(self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_owned()).collect()
    }

    pub fn to_space_separated(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        ScopeSet(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_subsets() {
        let s = ScopeSet::parse_space_separated("me:read tokens:read").unwrap();
        assert_eq!(s.to_space_separated(), "me:read tokens:read");
        assert!(s.is_subset_of(ScopeSet::all()));
        assert!(!ScopeSet::all().is_subset_of(s));
        assert_eq!(
            ScopeSet::parse_names(["me:read", "root"]),
            Err("root".to_owned())
        );
    }
}
