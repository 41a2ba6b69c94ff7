//! Splitting a GraphQL document between tokengate's root fields and the
//! upstream's: each part keeps its fields (aliases, arguments, directives and
//! selections as written), the fragments it uses and the variables it uses,
//! and is printed back as GraphQL text.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use async_graphql::parser::types::{
    Directive, ExecutableDocument, Field, FragmentDefinition, OperationDefinition, OperationType,
    Selection, SelectionSet, VariableDefinition,
};
use async_graphql::parser::Positioned;
use async_graphql_value::{Name, Value};

/// Which side serves a root field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// tokengate (or the application built on it), and introspection.
    Local,
    /// The upstream server.
    Upstream,
    /// `__schema` and `__type`: answered by the composed schema.
    Introspection,
}

/// One root field of the operation, in document order.
#[derive(Debug)]
pub struct RootField<'a> {
    /// The response key: the alias, else the name.
    pub key: String,
    /// The field's name.
    pub name: String,
    /// Where it runs.
    pub side: Side,
    field: &'a Positioned<Field>,
}

/// An operation taken apart.
#[derive(Debug)]
pub struct Split<'a> {
    /// `query` or `mutation`.
    pub ty: OperationType,
    /// Its root fields in document order (fragments at the root flattened).
    pub fields: Vec<RootField<'a>>,
    op: &'a OperationDefinition,
    name: Option<&'a Name>,
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
}

/// Why a document is not split (it then runs locally, which reports any error).
#[derive(Debug, PartialEq, Eq)]
pub enum NotSplit {
    /// No operation could be chosen, or it is a subscription.
    Local,
    /// A fragment at the root carries directives and reaches upstream fields:
    /// not supported.
    RootFragmentDirectives,
}

/// Chooses the operation (as GraphQL does: by name, or the only one) and
/// classifies its root fields with `upstream(root_type, name)`.
pub fn split<'a>(
    doc: &'a ExecutableDocument,
    operation_name: Option<&str>,
    upstream: impl Fn(OperationType, &str) -> bool,
) -> Result<Split<'a>, NotSplit> {
    let (name, op) = match operation_name {
        Some(wanted) => doc
            .operations
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == wanted))
            .ok_or(NotSplit::Local)?,
        None => {
            let mut ops = doc.operations.iter();
            let only = ops.next().ok_or(NotSplit::Local)?;
            if ops.next().is_some() {
                return Err(NotSplit::Local);
            }
            only
        }
    };
    let op = &op.node;
    if op.ty == OperationType::Subscription {
        return Err(NotSplit::Local);
    }
    let mut fields = Vec::new();
    flatten(
        &op.selection_set.node,
        &doc.fragments,
        &mut fields,
        false,
        &mut Vec::new(),
    )?;
    let directed = fields.iter().any(|(_, d)| *d);
    let fields = fields
        .into_iter()
        .map(|(field, _): (&Positioned<Field>, bool)| {
            let f = &field.node;
            let name = f.name.node.to_string();
            let side = if name == "__schema" || name == "__type" {
                Side::Introspection
            } else if !name.starts_with("__") && upstream(op.ty, &name) {
                Side::Upstream
            } else {
                Side::Local
            };
            RootField {
                key: f.response_key().node.to_string(),
                name,
                side,
                field,
            }
        })
        .collect::<Vec<_>>();
    // Fragments at the root are flattened; one with directives cannot be
    // without changing what it means, so a document that has one and upstream
    // fields is refused (one without upstream fields runs as written).
    if fields.iter().any(|f| f.side == Side::Upstream) && directed {
        return Err(NotSplit::RootFragmentDirectives);
    }
    Ok(Split {
        ty: op.ty,
        fields,
        op,
        name,
        fragments: &doc.fragments,
    })
}

fn flatten<'a>(
    set: &'a SelectionSet,
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    out: &mut Vec<(&'a Positioned<Field>, bool)>,
    directed: bool,
    seen: &mut Vec<&'a str>,
) -> Result<(), NotSplit> {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => out.push((f, directed)),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if seen.contains(&name) {
                    continue; // a cycle: validation reports it locally
                }
                let Some(def) = fragments.get(&spread.node.fragment_name.node) else {
                    return Err(NotSplit::Local);
                };
                seen.push(name);
                flatten(
                    &def.node.selection_set.node,
                    fragments,
                    out,
                    directed || !spread.node.directives.is_empty(),
                    seen,
                )?;
                seen.pop();
            }
            Selection::InlineFragment(inline) => flatten(
                &inline.node.selection_set.node,
                fragments,
                out,
                directed || !inline.node.directives.is_empty(),
                seen,
            )?,
        }
    }
    Ok(())
}

impl Split<'_> {
    /// Whether any root field is the upstream's.
    pub fn has_upstream(&self) -> bool {
        self.fields.iter().any(|f| f.side == Side::Upstream)
    }

    /// Whether any root field is local.
    pub fn has_local(&self) -> bool {
        self.fields.iter().any(|f| f.side == Side::Local)
    }

    /// Whether any root field is `__schema` or `__type`.
    pub fn has_introspection(&self) -> bool {
        self.fields.iter().any(|f| f.side == Side::Introspection)
    }

    /// The operation with only the root fields `keep` accepts, the fragments
    /// they use and the variables they use, as GraphQL text; and the names of
    /// those variables.
    pub fn print(&self, keep: impl Fn(&RootField<'_>) -> bool) -> (String, BTreeSet<String>) {
        let fields: Vec<&Positioned<Field>> = self
            .fields
            .iter()
            .filter(|f| keep(f))
            .map(|f| f.field)
            .collect();
        let used = self.fragments_used(&fields);
        let mut out = String::new();
        let mut body = String::new();
        body.push('{');
        for f in &fields {
            body.push(' ');
            print_field(&f.node, &mut body);
        }
        body.push_str(" }");
        let mut fragments_text = String::new();
        for name in &used {
            if let Some(def) = self.fragments.get(name.as_str()) {
                let d = &def.node;
                let _ = write!(
                    fragments_text,
                    " fragment {name} on {}",
                    d.type_condition.node.on.node
                );
                print_directives(&d.directives, &mut fragments_text);
                fragments_text.push(' ');
                print_set(&d.selection_set.node, &mut fragments_text);
            }
        }
        // Variables used anywhere in what is printed.
        let mut vars = BTreeSet::new();
        collect_variables(&body, &mut vars);
        collect_variables(&fragments_text, &mut vars);
        let defs: Vec<&Positioned<VariableDefinition>> = self
            .op
            .variable_definitions
            .iter()
            .filter(|v| vars.contains(v.node.name.node.as_str()))
            .collect();
        out.push_str(match self.ty {
            OperationType::Query => "query",
            OperationType::Mutation => "mutation",
            OperationType::Subscription => "subscription",
        });
        if let Some(name) = self.name {
            let _ = write!(out, " {name}");
        }
        if !defs.is_empty() {
            out.push('(');
            for (i, v) in defs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let v = &v.node;
                let _ = write!(out, "${}: {}", v.name.node, v.var_type.node);
                if let Some(d) = &v.default_value {
                    out.push_str(" = ");
                    print_value(&d.node.clone().into_value(), &mut out);
                }
                print_directives(&v.directives, &mut out);
            }
            out.push(')');
        }
        print_directives(&self.op.directives, &mut out);
        out.push(' ');
        out.push_str(&body);
        out.push_str(&fragments_text);
        let names = defs.iter().map(|v| v.node.name.node.to_string()).collect();
        (out, names)
    }

    /// The fragments `fields` use, transitively.
    fn fragments_used(&self, fields: &[&Positioned<Field>]) -> BTreeSet<String> {
        let mut used: BTreeSet<String> = BTreeSet::new();
        let mut stack: Vec<&SelectionSet> =
            fields.iter().map(|f| &f.node.selection_set.node).collect();
        while let Some(set) = stack.pop() {
            for item in &set.items {
                match &item.node {
                    Selection::Field(f) => stack.push(&f.node.selection_set.node),
                    Selection::InlineFragment(i) => stack.push(&i.node.selection_set.node),
                    Selection::FragmentSpread(s) => {
                        let name = s.node.fragment_name.node.to_string();
                        if used.insert(name) {
                            if let Some(def) = self.fragments.get(&s.node.fragment_name.node) {
                                stack.push(&def.node.selection_set.node);
                            }
                        }
                    }
                }
            }
        }
        used
    }

    /// Whether the whole document is this operation and what it uses: no
    /// other operation, no fragment it does not use, no variable it defines
    /// and does not use. Such a document, when all of it goes upstream, can
    /// be sent as written.
    pub fn self_contained(&self, doc: &ExecutableDocument) -> bool {
        if doc.operations.iter().count() != 1 {
            return false;
        }
        let fields: Vec<&Positioned<Field>> = self.fields.iter().map(|f| f.field).collect();
        if self.fragments_used(&fields).len() != doc.fragments.len() {
            return false;
        }
        let (_, variables) = self.print(|_| true);
        variables.len() == self.op.variable_definitions.len()
    }

    /// The names of the variables the operation defines.
    pub fn variables_defined(&self) -> impl Iterator<Item = &str> {
        self.op
            .variable_definitions
            .iter()
            .map(|v| v.node.name.node.as_str())
    }
}

/// Variable names referenced in printed GraphQL (`$name` outside strings).
fn collect_variables(text: &str, out: &mut BTreeSet<String>) {
    let mut chars = text.char_indices().peekable();
    let mut in_string = false;
    while let Some((_, c)) = chars.next() {
        match c {
            '\\' if in_string => {
                chars.next();
            }
            '"' => in_string = !in_string,
            '$' if !in_string => {
                let mut name = String::new();
                while let Some((_, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || *c == '_' {
                        name.push(*c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if !name.is_empty() {
                    out.insert(name);
                }
            }
            _ => {}
        }
    }
}

fn print_field(f: &Field, out: &mut String) {
    if let Some(alias) = &f.alias {
        let _ = write!(out, "{}: ", alias.node);
    }
    out.push_str(f.name.node.as_str());
    print_arguments(&f.arguments, out);
    print_directives(&f.directives, out);
    if !f.selection_set.node.items.is_empty() {
        out.push(' ');
        print_set(&f.selection_set.node, out);
    }
}

fn print_set(set: &SelectionSet, out: &mut String) {
    out.push('{');
    for item in &set.items {
        out.push(' ');
        match &item.node {
            Selection::Field(f) => print_field(&f.node, out),
            Selection::FragmentSpread(s) => {
                let _ = write!(out, "...{}", s.node.fragment_name.node);
                print_directives(&s.node.directives, out);
            }
            Selection::InlineFragment(i) => {
                out.push_str("...");
                if let Some(t) = &i.node.type_condition {
                    let _ = write!(out, " on {}", t.node.on.node);
                }
                print_directives(&i.node.directives, out);
                out.push(' ');
                print_set(&i.node.selection_set.node, out);
            }
        }
    }
    out.push_str(" }");
}

fn print_arguments(args: &[(Positioned<Name>, Positioned<Value>)], out: &mut String) {
    if args.is_empty() {
        return;
    }
    out.push('(');
    for (i, (name, value)) in args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}: ", name.node);
        print_value(&value.node, out);
    }
    out.push(')');
}

fn print_directives(dirs: &[Positioned<Directive>], out: &mut String) {
    for d in dirs {
        let _ = write!(out, " @{}", d.node.name.node);
        print_arguments(&d.node.arguments, out);
    }
}

/// A value as a GraphQL literal. Strings are escaped as the GraphQL spec
/// writes them (`\uXXXX` in hexadecimal for control characters).
fn print_value(v: &Value, out: &mut String) {
    match v {
        Value::Variable(name) => {
            let _ = write!(out, "${name}");
        }
        Value::Null => out.push_str("null"),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => {
                        let _ = write!(out, "\\u{:04x}", c as u32);
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Enum(name) => out.push_str(name.as_str()),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                print_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{k}: ");
                print_value(item, out);
            }
            out.push('}');
        }
        Value::Binary(_) => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(query: &str) -> (String, String) {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        let split = split(&doc, None, |_, n| n.starts_with("up")).unwrap();
        let (local, _) = split.print(|f| f.side == Side::Local);
        let (up, vars) = split.print(|f| f.side == Side::Upstream);
        (local, format!("{up} | {vars:?}"))
    }

    #[test]
    fn splits_fields_fragments_and_variables() {
        let (local, up) = parts(
            r#"query Q($a: Int = 3, $b: String!, $unused: ID) @cached {
                me { id }
                x: upOrders(first: $a) { ...O items { ... on Item { name(lang: "fr\u0001") } } }
                ... on Query { upMore(b: $b) @skip(if: false) }
                ...R
            }
            fragment O on Orders { total }
            fragment R on Query { accessTokens { id } }"#,
        );
        assert_eq!(local, "query Q @cached { me { id } accessTokens { id } }");
        assert_eq!(
            up,
            "query Q($a: Int = 3, $b: String!) @cached { x: upOrders(first: $a) { ...O items { ... on Item { name(lang: \"fr\\u0001\") } } } upMore(b: $b) @skip(if: false) } fragment O on Orders { total } | {\"a\", \"b\"}"
        );
    }

    #[test]
    fn directives_on_root_fragments_reaching_upstream_are_refused() {
        let doc = async_graphql::parser::parse_query("{ ... @include(if: true) { upX } }").unwrap();
        assert_eq!(
            split(&doc, None, |_, n| n.starts_with("up")).unwrap_err(),
            NotSplit::RootFragmentDirectives
        );
    }
}
