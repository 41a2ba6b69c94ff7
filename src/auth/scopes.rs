//! Scopes: tokengate's own (SPEC §4) and those an application declares
//! (SPEC §7), in one registry per deployment, with a bit set for the fast path.
//!
//! A [`Scope`] is an index into its deployment's [`Scopes`] plus its name; a
//! [`ScopeSet`] is a 128-bit set of indices, so the guard's check is one AND.
//! Names only matter at the edges (GraphQL arguments, OAuth `scope`, stored
//! tokens), which go through the registry.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use super::principal::Role;

/// One permission a credential may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scope {
    index: u8,
    name: &'static str,
}

impl Scope {
    /// `me:read`: read your own user.
    pub const ME_READ: Scope = Scope::builtin(0, "me:read");
    /// `tokens:read`: list and read your tokens.
    pub const TOKENS_READ: Scope = Scope::builtin(1, "tokens:read");
    /// `tokens:write`: issue and revoke your tokens.
    pub const TOKENS_WRITE: Scope = Scope::builtin(2, "tokens:write");
    /// `users:read`: read users, service accounts and their tokens (administrators).
    pub const USERS_READ: Scope = Scope::builtin(3, "users:read");
    /// `users:write`: manage users, service accounts and their tokens (administrators).
    pub const USERS_WRITE: Scope = Scope::builtin(4, "users:write");

    /// tokengate's own scopes, in registry order.
    pub const BUILTIN: [Scope; 5] = [
        Scope::ME_READ,
        Scope::TOKENS_READ,
        Scope::TOKENS_WRITE,
        Scope::USERS_READ,
        Scope::USERS_WRITE,
    ];

    const fn builtin(index: u8, name: &'static str) -> Scope {
        Scope { index, name }
    }

    /// The scope's name, such as `tokens:read` or `books:write`.
    pub fn as_str(self) -> &'static str {
        self.name
    }

    fn bit(self) -> u128 {
        1 << self.index
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// An application's scope declaration (SPEC §7): its name, what it allows, and
/// which roles hold it by default. Administrators hold every scope.
///
/// ```
/// use tokengate::{Role, ScopeDef};
/// let read = ScopeDef::new("books:read", "Read the catalogue").held_by([Role::Member]);
/// assert_eq!(read.name, "books:read");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeDef {
    /// Lowercase letters, digits and `:._-`, starting with a letter; at most 64 characters.
    pub name: String,
    /// Shown beside the scope's checkbox in the console.
    pub description: String,
    /// Roles holding the scope by default besides administrators: `Member`
    /// (members, and service accounts when an administrator grants it),
    /// `Service` (service accounts only). Empty: administrators only.
    pub roles: Vec<Role>,
}

impl ScopeDef {
    /// A scope held by administrators only, until [`ScopeDef::held_by`] adds roles.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> ScopeDef {
        ScopeDef {
            name: name.into(),
            description: description.into(),
            roles: Vec::new(),
        }
    }

    /// Adds roles that hold the scope by default.
    pub fn held_by(mut self, roles: impl IntoIterator<Item = Role>) -> ScopeDef {
        self.roles.extend(roles);
        self
    }
}

/// The most scopes a deployment may have, tokengate's five included.
pub const MAX_SCOPES: usize = 128;
const MAX_NAME_LEN: usize = 64;
const MAX_DESCRIPTION_LEN: usize = 200;

/// A scope as the deployment knows it: what it allows, who holds it.
#[derive(Clone, Debug)]
pub struct Declared {
    /// The scope itself: its index in the registry and its name.
    pub scope: Scope,
    /// What it allows, as shown beside its checkbox in the console.
    pub description: &'static str,
    /// Holders besides administrators.
    pub roles: Vec<Role>,
}

/// The deployment's scopes: tokengate's, then the application's in the order declared.
#[derive(Clone, Debug)]
pub struct Scopes {
    declared: Vec<Declared>,
    by_name: HashMap<&'static str, Scope>,
    all: ScopeSet,
    member: ScopeSet,
    service: ScopeSet,
}

impl Default for Scopes {
    /// tokengate's own scopes only.
    fn default() -> Self {
        Scopes::new(&[]).expect("the built-in scopes are valid")
    }
}

impl Scopes {
    /// The built-in scopes followed by `custom`; refuses a malformed or repeated
    /// name, an empty or overlong description, or more than [`MAX_SCOPES`].
    pub fn new(custom: &[ScopeDef]) -> Result<Scopes, String> {
        const BUILTIN_DESCRIPTIONS: [&str; 5] = [
            "Read your own user",
            "List and read your access tokens",
            "Issue, rotate and revoke your access tokens",
            "Read users, service accounts and their tokens (administrators)",
            "Manage users, service accounts and their tokens (administrators)",
        ];
        let mut declared: Vec<Declared> = Scope::BUILTIN
            .iter()
            .zip(BUILTIN_DESCRIPTIONS)
            .map(|(scope, description)| Declared {
                scope: *scope,
                description,
                roles: if matches!(*scope, Scope::USERS_READ | Scope::USERS_WRITE) {
                    Vec::new()
                } else {
                    vec![Role::Member, Role::Service]
                },
            })
            .collect();
        if Scope::BUILTIN.len() + custom.len() > MAX_SCOPES {
            return Err(format!(
                "{} scopes are declared; a deployment has at most {} (tokengate's {} included)",
                Scope::BUILTIN.len() + custom.len(),
                MAX_SCOPES,
                Scope::BUILTIN.len()
            ));
        }
        for def in custom {
            check_name(&def.name)?;
            let description = def.description.trim();
            if description.is_empty() || description.chars().count() > MAX_DESCRIPTION_LEN {
                return Err(format!(
                    "scope `{}` needs a description of 1 to {MAX_DESCRIPTION_LEN} characters",
                    def.name
                ));
            }
            if declared.iter().any(|d| d.scope.name == def.name) {
                return Err(format!("scope `{}` is declared twice", def.name));
            }
            let mut roles: Vec<Role> = def
                .roles
                .iter()
                .copied()
                .filter(|r| *r != Role::Admin)
                .collect();
            roles.dedup();
            declared.push(Declared {
                scope: Scope {
                    index: declared.len() as u8,
                    name: intern(&def.name),
                },
                description: intern(description),
                roles,
            });
        }
        let holders = |role: Role| -> ScopeSet {
            declared
                .iter()
                .filter(|d| d.roles.contains(&role))
                .map(|d| d.scope)
                .collect()
        };
        let member = holders(Role::Member);
        // What members hold an administrator may also grant a service account.
        let service = member.union(holders(Role::Service));
        Ok(Scopes {
            by_name: declared.iter().map(|d| (d.scope.name, d.scope)).collect(),
            all: declared.iter().map(|d| d.scope).collect(),
            member,
            service,
            declared,
        })
    }

    /// Every scope with its description, in registry order.
    pub fn declared(&self) -> &[Declared] {
        &self.declared
    }

    /// The scope of that name.
    pub fn get(&self, name: &str) -> Option<Scope> {
        self.by_name.get(name).copied()
    }

    /// Every scope.
    pub fn all(&self) -> ScopeSet {
        self.all
    }

    /// Every scope a role may hold or grant: administrators all; members the
    /// built-in ones but `users:*` and the declared ones naming `member`;
    /// service accounts those and the ones naming `service` (an account is
    /// further bounded by the scopes an administrator gave it). A `users:*`
    /// scope therefore always means the admin role.
    pub fn of_role(&self, role: Role) -> ScopeSet {
        match role {
            Role::Admin => self.all,
            Role::Member => self.member,
            Role::Service => self.service,
        }
    }

    /// The scope's description.
    pub fn description(&self, scope: Scope) -> &'static str {
        self.declared
            .get(usize::from(scope.index))
            .map(|d| d.description)
            .unwrap_or("")
    }

    /// Parses scope names; on an unknown name, returns it.
    pub fn parse_names<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<ScopeSet, String> {
        names
            .into_iter()
            .filter(|n| !n.is_empty())
            .map(|n| self.get(n).ok_or_else(|| n.to_owned()))
            .collect()
    }

    /// Parses the space-separated form carried in OAuth `scope`.
    pub fn parse_space_separated(&self, s: &str) -> Result<ScopeSet, String> {
        self.parse_names(s.split(' '))
    }

    /// Reads a stored or signed scope list: a name no longer declared grants nothing.
    pub fn parse_stored(&self, s: &str) -> ScopeSet {
        s.split(' ').filter_map(|n| self.get(n)).collect()
    }

    /// The names of a set's scopes, in registry order.
    pub fn names(&self, set: ScopeSet) -> Vec<String> {
        self.iter(set).map(|s| s.name.to_owned()).collect()
    }

    /// The space-separated form stored with tokens and carried in `scope`.
    pub fn to_space_separated(&self, set: ScopeSet) -> String {
        self.iter(set)
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A set's scopes, in registry order.
    pub fn iter(&self, set: ScopeSet) -> impl Iterator<Item = Scope> + '_ {
        self.declared
            .iter()
            .map(|d| d.scope)
            .filter(move |s| set.contains(*s))
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, ':' | '.' | '_' | '-')
    });
    if first_ok && rest_ok && name.len() <= MAX_NAME_LEN {
        Ok(())
    } else {
        Err(format!(
            "scope name `{name}` is not valid: use lowercase letters, digits and `:._-`, \
             starting with a letter, at most {MAX_NAME_LEN} characters (such as `books:read`)"
        ))
    }
}

/// Declared names and descriptions live for the process (a registry is built
/// once per start), so scopes can be `Copy` and errors can name them.
fn intern(s: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<std::collections::HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(found) = names.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// A set of scopes of one deployment, as a bit set.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(u128);

impl ScopeSet {
    /// No scopes.
    pub const EMPTY: ScopeSet = ScopeSet(0);

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether every scope in `self` is also in `other` (true for the empty set).
    pub fn is_subset_of(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// Whether the set holds no scope.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in either set.
    pub fn union(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 | other.0)
    }

    /// The scopes in both sets.
    pub fn intersection(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & other.0)
    }

    /// Adds `scope` to the set.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        ScopeSet(iter.into_iter().fold(0, |acc, s| acc | s.bit()))
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeSet({:#x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn books() -> Scopes {
        Scopes::new(&[
            ScopeDef::new("books:read", "Read the catalogue").held_by([Role::Member]),
            ScopeDef::new("books:write", "Add books"),
            ScopeDef::new("books:sync", "Sync").held_by([Role::Service]),
        ])
        .unwrap()
    }

    #[test]
    fn round_trips_and_subsets() {
        let scopes = books();
        let s = scopes
            .parse_space_separated("books:read me:read tokens:read")
            .unwrap();
        assert_eq!(
            scopes.to_space_separated(s),
            "me:read tokens:read books:read"
        );
        assert!(s.is_subset_of(scopes.all()));
        assert!(!scopes.all().is_subset_of(s));
        assert_eq!(
            scopes.parse_names(["me:read", "root"]),
            Err("root".to_owned())
        );
        assert_eq!(
            scopes.parse_stored("gone:read books:read"),
            scopes.parse_names(["books:read"]).unwrap()
        );
    }

    #[test]
    fn roles_hold_what_they_are_declared_with() {
        let scopes = books();
        let names = |role| scopes.to_space_separated(scopes.of_role(role));
        assert_eq!(
            names(Role::Member),
            "me:read tokens:read tokens:write books:read"
        );
        assert_eq!(
            names(Role::Service),
            "me:read tokens:read tokens:write books:read books:sync"
        );
        assert_eq!(scopes.of_role(Role::Admin), scopes.all());
    }

    #[test]
    fn refuses_bad_declarations() {
        let bad = |def: ScopeDef| Scopes::new(&[def]).unwrap_err();
        assert!(bad(ScopeDef::new("Books", "x")).contains("not valid"));
        assert!(bad(ScopeDef::new("books read", "x")).contains("not valid"));
        assert!(bad(ScopeDef::new("me:read", "x")).contains("declared twice"));
        assert!(bad(ScopeDef::new("books:read", " ")).contains("description"));
        let many: Vec<ScopeDef> = (0..124)
            .map(|i| ScopeDef::new(format!("s{i}"), "x"))
            .collect();
        assert!(Scopes::new(&many).unwrap_err().contains("at most 128"));
        assert!(Scopes::new(&many[..123]).is_ok());
    }
}
