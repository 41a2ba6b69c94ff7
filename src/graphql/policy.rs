//! Scopes per field, read from the schema itself: the `@requiresScopes`
//! directive on a field definition is both what the SDL shows and what the
//! guard enforces, and `requiredScopes` computes from the same table.
//!
//! The table is built once, from the schema's own SDL, when the schema is
//! built; the [`ScopeGuard`] (part of the schema's one extension) looks each resolved field up in it and
//! refuses with `FORBIDDEN` + `requiredScope` (the field is null, the rest of
//! the response resolves).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use async_graphql::extensions::{ExtensionContext, NextResolve, ResolveInfo};
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, FragmentDefinition, OperationType, Selection,
    SelectionSet, ServiceDocument, TypeKind, TypeSystemDefinition,
};
use async_graphql::registry::{MetaDirective, MetaDirectiveInvocation, MetaInputValue, Registry};
use async_graphql::{
    ErrorExtensions, InputType, Name, PathSegment, ServerError, ServerResult, TypeDirective, Value,
};

use crate::auth::scopes::{Scope, ScopeSet, Scopes};
use crate::auth::Principal;
use crate::error::AppError;

/// The directive's name in the SDL (Apollo's shape).
pub const DIRECTIVE: &str = "requiresScopes";

/// `#[graphql(directive = tokengate::requires_scope::apply("books:read"))]`
/// on a resolver: the field needs that scope. tokengate guards it like its
/// own fields (`FORBIDDEN` with `requiredScope`, the rest of the response
/// resolving), shows it in the SDL as `@requiresScopes(scopes: [["books:read"]])`,
/// and counts it in `requiredScopes`. The scope must be declared (built in,
/// `TokenGate::scope` or the TOML file's `[[scopes]]`); building the
/// schema fails naming any field that asks for an undeclared one.
#[allow(non_camel_case_types)]
pub struct requires_scope;

impl requires_scope {
    /// The directive requiring `scope` on a field definition.
    pub fn apply(scope: &str) -> MetaDirectiveInvocation {
        MetaDirectiveInvocation {
            name: DIRECTIVE.to_owned(),
            args: [(
                "scopes".to_owned(),
                Value::List(vec![Value::List(vec![Value::String(scope.to_owned())])]),
            )]
            .into_iter()
            .collect(),
        }
    }
}

impl TypeDirective for requires_scope {
    fn name(&self) -> std::borrow::Cow<'static, str> {
        DIRECTIVE.into()
    }

    fn register(&self, registry: &mut Registry) {
        let ty = <Vec<Vec<String>> as InputType>::create_type_info(registry);
        registry.add_directive(MetaDirective {
            name: DIRECTIVE.to_owned(),
            description: Some(
                "The scopes a credential needs for this field: any one inner list, all of its scopes."
                    .to_owned(),
            ),
            locations: vec![async_graphql::registry::__DirectiveLocation::FIELD_DEFINITION],
            args: [(
                "scopes".to_owned(),
                MetaInputValue {
                    name: "scopes".to_owned(),
                    description: None,
                    ty,
                    deprecation: Default::default(),
                    default_value: None,
                    visible: None,
                    inaccessible: false,
                    tags: Vec::new(),
                    is_secret: false,
                    directive_invocations: Vec::new(),
                },
            )]
            .into_iter()
            .collect(),
            is_repeatable: false,
            visible: None,
            composable: None,
        });
    }
}

impl async_graphql::registry::location_traits::Directive_At_FIELD_DEFINITION for requires_scope {}

/// What one field needs: any one of the alternatives, all of its scopes.
#[derive(Clone, Debug)]
struct Requirement(Vec<Vec<Scope>>);

impl Requirement {
    fn satisfied_by(&self, held: ScopeSet) -> bool {
        self.0
            .iter()
            .any(|all| all.iter().all(|s| held.contains(*s)))
    }

    /// `None` when `held` satisfies it; else the scope to name in
    /// `requiredScope`: the first one missing from the first alternative.
    fn refusal(&self, held: ScopeSet) -> Option<&'static str> {
        if self.satisfied_by(held) {
            return None;
        }
        let missing = self
            .0
            .first()
            .and_then(|all| all.iter().copied().find(|s| !held.contains(*s)));
        Some(
            missing
                .or_else(|| self.least().next())
                .map_or("", Scope::as_str),
        )
    }

    /// The least privilege this field adds: its first alternative.
    fn least(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.first().into_iter().flatten().copied()
    }
}

struct FieldInfo {
    /// The named type the field returns (lists and non-null stripped).
    returns: String,
    requirement: Option<Requirement>,
}

/// Every field's scopes and return type, from the schema's SDL.
pub struct ScopePolicy {
    types: HashMap<String, HashMap<String, FieldInfo>>,
    roots: [Option<String>; 3],
}

impl ScopePolicy {
    /// Reads the schema's SDL; refuses a directive naming an undeclared scope.
    pub fn from_sdl(sdl: &str, scopes: &Scopes) -> Result<ScopePolicy, String> {
        let doc: ServiceDocument = async_graphql::parser::parse_schema(sdl)
            .map_err(|e| format!("the schema's SDL does not parse: {e}"))?;
        let mut types: HashMap<String, HashMap<String, FieldInfo>> = HashMap::new();
        let mut implementers: HashMap<String, Vec<String>> = HashMap::new();
        let mut interfaces = Vec::new();
        let mut roots = [
            Some("Query".to_owned()),
            Some("Mutation".to_owned()),
            Some("Subscription".to_owned()),
        ];
        for def in &doc.definitions {
            match def {
                TypeSystemDefinition::Schema(schema) => {
                    let s = &schema.node;
                    roots = [
                        s.query.as_ref().map(|n| n.node.to_string()),
                        s.mutation.as_ref().map(|n| n.node.to_string()),
                        s.subscription.as_ref().map(|n| n.node.to_string()),
                    ];
                }
                TypeSystemDefinition::Type(ty) => {
                    let name = ty.node.name.node.to_string();
                    let fields = match &ty.node.kind {
                        TypeKind::Object(o) => {
                            for i in &o.implements {
                                implementers
                                    .entry(i.node.to_string())
                                    .or_default()
                                    .push(name.clone());
                            }
                            &o.fields
                        }
                        TypeKind::Interface(i) => {
                            interfaces.push(name.clone());
                            &i.fields
                        }
                        _ => continue,
                    };
                    let mut map = HashMap::new();
                    for field in fields {
                        let f = &field.node;
                        let mut requirement = None;
                        for d in &f.directives {
                            if d.node.name.node != DIRECTIVE {
                                continue;
                            }
                            let where_ = format!("{name}.{}", f.name.node);
                            requirement = Some(parse_requirement(&d.node, scopes, &where_)?);
                        }
                        map.insert(
                            f.name.node.to_string(),
                            FieldInfo {
                                returns: named(&f.ty.node.base),
                                requirement,
                            },
                        );
                    }
                    types.insert(name, map);
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        // A field read through an interface needs what every implementation
        // of it needs (the guard sees the interface, not the object).
        for interface in interfaces {
            let objects = implementers.get(&interface).cloned().unwrap_or_default();
            let field_names: Vec<String> = types
                .get(&interface)
                .map(|f| f.keys().cloned().collect())
                .unwrap_or_default();
            for field in field_names {
                let mut all: Vec<Scope> = Vec::new();
                for object in &objects {
                    if let Some(r) = types
                        .get(object)
                        .and_then(|f| f.get(&field))
                        .and_then(|f| f.requirement.as_ref())
                    {
                        all.extend(r.least());
                    }
                }
                if let Some(info) = types.get_mut(&interface).and_then(|f| f.get_mut(&field)) {
                    // The interface's own scopes and every implementation's:
                    // the guard sees the interface, not the object resolved.
                    if let Some(own) = &info.requirement {
                        all.extend(own.least());
                    }
                    all.sort_by_key(|s| s.as_str());
                    all.dedup();
                    if !all.is_empty() {
                        info.requirement = Some(Requirement(vec![all]));
                    }
                }
            }
        }
        Ok(ScopePolicy { types, roots })
    }

    fn requirement(&self, ty: &str, field: &str) -> Option<&Requirement> {
        self.types.get(ty)?.get(field)?.requirement.as_ref()
    }

    /// Every guarded field as `Type.field` with its scopes (first alternative).
    pub fn guarded_fields(&self) -> Vec<(String, Vec<&'static str>)> {
        let mut out: Vec<_> = self
            .types
            .iter()
            .flat_map(|(ty, fields)| {
                fields.iter().filter_map(move |(name, info)| {
                    let r = info.requirement.as_ref()?;
                    Some((
                        format!("{ty}.{name}"),
                        r.least().map(Scope::as_str).collect(),
                    ))
                })
            })
            .collect();
        out.sort();
        out
    }

    /// The least set of scopes running `query` (the operation `operation_name`)
    /// needs; `BAD_USER_INPUT` for a document that does not parse, an unknown
    /// operation, type, field or fragment.
    pub fn required_scopes(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<ScopeSet, AppError> {
        let doc: ExecutableDocument = async_graphql::parser::parse_query(query)
            .map_err(|e| AppError::BadInput(format!("the document does not parse: {e}")))?;
        let op = match (&doc.operations, operation_name) {
            (_, Some(_)) => return self.named_operation(&doc, operation_name),
            (DocumentOperations::Single(op), None) => op,
            (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
                ops.values().next().expect("one operation")
            }
            (DocumentOperations::Multiple(_), None) => {
                return Err(AppError::BadInput(
                    "the document has several operations; give operationName".into(),
                ))
            }
        };
        self.operation_scopes(&doc, &op.node)
    }

    fn named_operation(
        &self,
        doc: &ExecutableDocument,
        operation_name: Option<&str>,
    ) -> Result<ScopeSet, AppError> {
        let wanted = operation_name.unwrap_or_default();
        let found = doc
            .operations
            .iter()
            .find(|(name, _)| name.map(|n| n.as_str()) == Some(wanted));
        match found {
            Some((_, op)) => self.operation_scopes(doc, &op.node),
            None => Err(AppError::BadInput(format!(
                "the document has no operation named `{wanted}`"
            ))),
        }
    }

    fn operation_scopes(
        &self,
        doc: &ExecutableDocument,
        op: &async_graphql::parser::types::OperationDefinition,
    ) -> Result<ScopeSet, AppError> {
        let index = match op.ty {
            OperationType::Query => 0,
            OperationType::Mutation => 1,
            OperationType::Subscription => 2,
        };
        let root = self.roots[index]
            .as_deref()
            .filter(|r| self.types.contains_key(*r))
            .ok_or_else(|| {
                AppError::BadInput(format!("this schema has no {} operations", op.ty))
            })?;
        let mut walk = Walk {
            policy: self,
            fragments: &doc.fragments,
            out: ScopeSet::EMPTY,
            visited: HashSet::new(),
            depth: 0,
        };
        walk.selection_set(root, &op.selection_set.node)?;
        Ok(walk.out)
    }
}

struct Walk<'a> {
    policy: &'a ScopePolicy,
    fragments: &'a HashMap<Name, async_graphql::Positioned<FragmentDefinition>>,
    out: ScopeSet,
    /// Fragments already walked, with the type they were walked at: walking
    /// one again adds no scope, so each is walked once (no blow-up from a
    /// fragment spread many times, and no cycles).
    visited: HashSet<(&'a str, String)>,
    depth: usize,
}

/// Deepest nesting `requiredScopes` walks (fields and fragments).
const MAX_WALK_DEPTH: usize = 64;

impl<'a> Walk<'a> {
    fn selection_set(&mut self, ty: &str, set: &'a SelectionSet) -> Result<(), AppError> {
        self.depth += 1;
        if self.depth > MAX_WALK_DEPTH {
            return Err(AppError::BadInput(format!(
                "the document nests deeper than {MAX_WALK_DEPTH} levels"
            )));
        }
        let result = self.items(ty, set);
        self.depth -= 1;
        result
    }

    fn items(&mut self, ty: &str, set: &'a SelectionSet) -> Result<(), AppError> {
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let name = field.node.name.node.as_str();
                    if name.starts_with("__") {
                        continue; // introspection needs no scope
                    }
                    let info = self
                        .policy
                        .types
                        .get(ty)
                        .and_then(|f| f.get(name))
                        .ok_or_else(|| {
                            AppError::BadInput(format!(
                                "cannot query field `{name}` on type `{ty}`"
                            ))
                        })?;
                    if let Some(r) = &info.requirement {
                        for s in r.least() {
                            self.out.insert(s);
                        }
                    }
                    let returns = info.returns.clone();
                    if !field.node.selection_set.node.items.is_empty() {
                        self.selection_set(&returns, &field.node.selection_set.node)?;
                    }
                }
                Selection::InlineFragment(fragment) => {
                    let on = fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map(|c| c.node.on.node.to_string())
                        .unwrap_or_else(|| ty.to_owned());
                    self.known_type(&on)?;
                    self.selection_set(&on, &fragment.node.selection_set.node)?;
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    let (key, fragment) = self
                        .fragments
                        .get_key_value(name)
                        .ok_or_else(|| AppError::BadInput(format!("unknown fragment `{name}`")))?;
                    let on = fragment.node.type_condition.node.on.node.to_string();
                    self.known_type(&on)?;
                    if !self.visited.insert((key.as_str(), ty.to_owned())) {
                        continue;
                    }
                    self.selection_set(&on, &fragment.node.selection_set.node)?;
                }
            }
        }
        Ok(())
    }

    fn known_type(&self, ty: &str) -> Result<(), AppError> {
        if self.policy.types.contains_key(ty) {
            Ok(())
        } else {
            Err(AppError::BadInput(format!("unknown type `{ty}`")))
        }
    }
}

fn named(base: &BaseType) -> String {
    match base {
        BaseType::Named(n) => n.to_string(),
        BaseType::List(inner) => named(&inner.base),
    }
}

fn parse_requirement(
    directive: &async_graphql::parser::types::ConstDirective,
    scopes: &Scopes,
    where_: &str,
) -> Result<Requirement, String> {
    let bad = || format!("{where_}: @{DIRECTIVE} takes scopes: [[String!]!]!");
    let arg = directive.get_argument("scopes").ok_or_else(bad)?;
    let async_graphql::Value::List(alternatives) = &arg.node else {
        return Err(bad());
    };
    let mut out = Vec::new();
    for alternative in alternatives {
        let async_graphql::Value::List(names) = alternative else {
            return Err(bad());
        };
        let mut all = Vec::new();
        for name in names {
            let async_graphql::Value::String(name) = name else {
                return Err(bad());
            };
            all.push(scopes.get(name).ok_or_else(|| {
                format!(
                    "{where_} requires scope `{name}`, which is not declared; declare it \
                     with TokenGate::scope or a [[scopes]] table (declared: {})",
                    scopes.to_space_separated(scopes.all())
                )
            })?);
        }
        if all.is_empty() {
            return Err(bad());
        }
        out.push(all);
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(Requirement(out))
}

/// The policy, shared by the guard extension and `requiredScopes`; set right
/// after the schema is built (its SDL is the input).
pub type SharedPolicy = Arc<OnceLock<ScopePolicy>>;

/// The scope guard: enforces `@requiresScopes` on every resolved field. It
/// runs as part of tokengate's one GraphQL extension (`graphql::Checks`).
#[derive(Clone)]
pub struct ScopeGuard(pub SharedPolicy);

impl ScopeGuard {
    /// After parsing: a subscription's root field is not resolved through
    /// `resolve` (it makes a stream), so it is checked here, before anything
    /// runs.
    pub(crate) async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &async_graphql::Variables,
        next: async_graphql::extensions::NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let Some(policy) = self.0.get() else {
            return Err(ServerError::new("scope policy not built", None));
        };
        let held = ctx
            .data_opt::<std::sync::Arc<Principal>>()
            .map_or(ScopeSet::EMPTY, |p| p.scopes);
        let root = policy.roots[2].as_deref().unwrap_or("Subscription");
        for (_, op) in doc.operations.iter() {
            if op.node.ty != OperationType::Subscription {
                continue;
            }
            let mut fields = Vec::new();
            if !root_fields(
                &doc,
                &op.node.selection_set.node,
                &mut fields,
                &mut HashSet::new(),
                0,
            ) {
                return Err(ServerError::new(
                    "the subscription's fragments nest too deep",
                    None,
                ));
            }
            for (name, pos) in fields {
                if let Some(scope) = policy.requirement(root, name).and_then(|r| r.refusal(held)) {
                    let e = AppError::Forbidden { scope }.extend();
                    return Err(ServerError {
                        message: e.message,
                        source: None,
                        locations: vec![pos],
                        path: vec![PathSegment::Field(name.to_owned())],
                        extensions: e.extensions,
                    });
                }
            }
        }
        Ok(doc)
    }

    /// Every resolved field: refused with FORBIDDEN unless the caller holds
    /// one of its required scope sets.
    pub(crate) async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let Some(policy) = self.0.get() else {
            return Err(refuse(&info, &AppError::internal("scope policy not built")));
        };
        if let Some(requirement) = policy.requirement(info.parent_type, info.name) {
            let held = ctx
                .data_opt::<std::sync::Arc<Principal>>()
                .map_or(ScopeSet::EMPTY, |p| p.scopes);
            if let Some(scope) = requirement.refusal(held) {
                return Err(refuse(&info, &AppError::Forbidden { scope }));
            }
        }
        next.run(ctx, info).await
    }
}

/// The root fields of a selection set, through fragments (each fragment
/// once); `false` when nested deeper than is plausible, which the caller
/// refuses rather than checking part of the document.
fn root_fields<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    out: &mut Vec<(&'a str, async_graphql::Pos)>,
    seen: &mut HashSet<&'a str>,
    depth: usize,
) -> bool {
    if depth > 8 {
        return false;
    }
    for item in &set.items {
        let complete = match &item.node {
            Selection::Field(f) => {
                out.push((f.node.name.node.as_str(), f.pos));
                true
            }
            Selection::InlineFragment(f) => {
                root_fields(doc, &f.node.selection_set.node, out, seen, depth + 1)
            }
            Selection::FragmentSpread(s) => {
                match doc.fragments.get_key_value(&s.node.fragment_name.node) {
                    Some((name, f)) if seen.insert(name.as_str()) => {
                        root_fields(doc, &f.node.selection_set.node, out, seen, depth + 1)
                    }
                    _ => true,
                }
            }
        };
        if !complete {
            return false;
        }
    }
    true
}

fn refuse(info: &ResolveInfo<'_>, error: &AppError) -> ServerError {
    let mut path = Vec::new();
    let mut node = Some(info.path_node);
    while let Some(n) = node {
        path.push(match n.segment {
            async_graphql::QueryPathSegment::Name(name) => PathSegment::Field(name.to_owned()),
            async_graphql::QueryPathSegment::Index(i) => PathSegment::Index(i),
        });
        node = n.parent;
    }
    path.reverse();
    let e = error.extend();
    ServerError {
        message: e.message,
        source: None,
        locations: Vec::new(),
        path,
        extensions: e.extensions,
    }
}
