//! The served schema in gateway mode: tokengate's types and the upstream's,
//! `Query` and `Mutation` with both sides' root fields, every guarded field
//! carrying `@requiresScopes` — built as an async-graphql dynamic schema from
//! the two introspection results. It answers introspection through `/api`
//! and is the SDL of `/api/schema.graphql`; its resolvers are never run
//! (the real fields are run by the split in `gateway::run`).

use std::collections::{BTreeMap, HashMap};

use async_graphql::dynamic::{
    Directive, Enum, EnumItem, Field, FieldFuture, InputObject, InputValue, Interface,
    InterfaceField, Object, Scalar, Schema, SchemaError, Subscription, SubscriptionField,
    SubscriptionFieldFuture, TypeRef, Union,
};
use async_graphql::Value;
use serde_json::Value as Json;

/// The standard introspection query (as graphql-js writes it), one level of
/// `ofType` nesting per wrapper up to seven.
pub const INTROSPECTION: &str = r#"query TokengateIntrospection {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}"#;

const BUILTIN_SCALARS: [&str; 5] = ["String", "Int", "Float", "Boolean", "ID"];

/// The two sides' schemas (each `__schema` of [`INTROSPECTION`]'s answer)
/// as one; `scopes` gives each guarded field's scopes by `Type.field` (the
/// root fields of both sides, tokengate's inner fields). A type both sides
/// define differently is an error naming it.
pub fn compose(
    local: &Json,
    upstream: &Json,
    scopes: &HashMap<String, Vec<String>>,
) -> Result<Schema, String> {
    let root = |s: &Json, k: &str| s[k]["name"].as_str().map(str::to_owned);
    let up_query = root(upstream, "queryType");
    let up_mutation = root(upstream, "mutationType");
    let up_subscription = root(upstream, "subscriptionType");
    let types = |s: &Json| -> BTreeMap<String, Json> {
        s["types"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| Some((t["name"].as_str()?.to_owned(), t.clone())))
            .filter(|(n, _)| !n.starts_with("__"))
            .collect()
    };
    let mut all = types(local);
    let theirs = types(upstream);
    for (name, t) in &theirs {
        let is_root = Some(name) == up_query.as_ref()
            || Some(name) == up_mutation.as_ref()
            || Some(name) == up_subscription.as_ref();
        if is_root {
            // Their root fields join ours (collisions were refused before).
            let into = if Some(name) == up_query.as_ref() {
                "Query"
            } else if Some(name) == up_mutation.as_ref() {
                "Mutation"
            } else {
                continue; // upstream subscriptions are not forwarded
            };
            let entry = all.entry(into.to_owned()).or_insert_with(|| {
                serde_json::json!({ "kind": "OBJECT", "name": into, "fields": [], "interfaces": [] })
            });
            let fields = entry["fields"]
                .as_array_mut()
                .ok_or("a root type without fields")?;
            fields.extend(t["fields"].as_array().cloned().unwrap_or_default());
            continue;
        }
        match all.get(name) {
            None => {
                all.insert(name.clone(), t.clone());
            }
            Some(ours) if ours["kind"] == "SCALAR" && t["kind"] == "SCALAR" => {}
            Some(_) => {
                return Err(format!(
                    "the upstream's type `{name}` has the name of one of tokengate's: rename it upstream"
                ))
            }
        }
    }
    // Type references to the upstream's root types by their own names.
    let rename = |n: &str| -> String {
        if Some(n) == up_query.as_deref() {
            "Query".into()
        } else if Some(n) == up_mutation.as_deref() {
            "Mutation".into()
        } else {
            n.to_owned()
        }
    };
    let has_mutation = all.contains_key("Mutation");
    let has_subscription = all.contains_key("Subscription");
    let mut builder = Schema::build(
        "Query",
        has_mutation.then_some("Mutation"),
        has_subscription.then_some("Subscription"),
    );
    for (name, t) in &all {
        let description = t["description"].as_str();
        match t["kind"].as_str().unwrap_or("") {
            "SCALAR" if BUILTIN_SCALARS.contains(&name.as_str()) => {}
            "SCALAR" => {
                let mut s = Scalar::new(name);
                if let Some(d) = description {
                    s = s.description(d);
                }
                builder = builder.register(s);
            }
            "OBJECT" if name == "Subscription" => {
                let mut s = Subscription::new(name);
                for f in t["fields"].as_array().into_iter().flatten() {
                    let fname = f["name"].as_str().unwrap_or_default().to_owned();
                    let mut field = SubscriptionField::new(
                        fname.clone(),
                        type_ref(&f["type"], &rename)?,
                        |_| {
                            SubscriptionFieldFuture::new(async {
                                Ok(async_graphql::futures_util::stream::empty::<
                                    async_graphql::Result<Value>,
                                >())
                            })
                        },
                    );
                    for a in f["args"].as_array().into_iter().flatten() {
                        field = field.argument(input_value(a, &rename)?);
                    }
                    if let Some(d) = f["description"].as_str() {
                        field = field.description(d);
                    }
                    s = s.field(field);
                }
                builder = builder.register(s);
            }
            "OBJECT" => {
                let mut o = Object::new(name);
                if let Some(d) = description {
                    o = o.description(d);
                }
                for i in t["interfaces"].as_array().into_iter().flatten() {
                    if let Some(n) = i["name"].as_str() {
                        o = o.implement(n);
                    }
                }
                for f in t["fields"].as_array().into_iter().flatten() {
                    o = o.field(field(name, f, scopes, &rename)?);
                }
                builder = builder.register(o);
            }
            "INTERFACE" => {
                let mut i = Interface::new(name);
                if let Some(d) = description {
                    i = i.description(d);
                }
                for f in t["fields"].as_array().into_iter().flatten() {
                    let mut field = InterfaceField::new(
                        f["name"].as_str().unwrap_or_default(),
                        type_ref(&f["type"], &rename)?,
                    );
                    for a in f["args"].as_array().into_iter().flatten() {
                        field = field.argument(input_value(a, &rename)?);
                    }
                    if let Some(d) = f["description"].as_str() {
                        field = field.description(d);
                    }
                    i = i.field(field);
                }
                for sup in t["interfaces"].as_array().into_iter().flatten() {
                    if let Some(n) = sup["name"].as_str() {
                        i = i.implement(n);
                    }
                }
                builder = builder.register(i);
            }
            "UNION" => {
                let mut u = Union::new(name);
                if let Some(d) = description {
                    u = u.description(d);
                }
                for p in t["possibleTypes"].as_array().into_iter().flatten() {
                    if let Some(n) = p["name"].as_str() {
                        u = u.possible_type(n);
                    }
                }
                builder = builder.register(u);
            }
            "ENUM" => {
                let mut e = Enum::new(name);
                if let Some(d) = description {
                    e = e.description(d);
                }
                for v in t["enumValues"].as_array().into_iter().flatten() {
                    let mut item = EnumItem::new(v["name"].as_str().unwrap_or_default());
                    if let Some(d) = v["description"].as_str() {
                        item = item.description(d);
                    }
                    if v["isDeprecated"] == true {
                        item = item.deprecation(v["deprecationReason"].as_str());
                    }
                    e = e.item(item);
                }
                builder = builder.register(e);
            }
            "INPUT_OBJECT" => {
                let mut i = InputObject::new(name);
                if let Some(d) = description {
                    i = i.description(d);
                }
                for f in t["inputFields"].as_array().into_iter().flatten() {
                    i = i.field(input_value(f, &rename)?);
                }
                builder = builder.register(i);
            }
            other => return Err(format!("type `{name}` of unknown kind `{other}`")),
        }
    }
    builder
        .finish()
        .map_err(|e: SchemaError| format!("the composed schema is not valid: {}", e.0))
}

fn field(
    ty: &str,
    f: &Json,
    scopes: &HashMap<String, Vec<String>>,
    rename: &impl Fn(&str) -> String,
) -> Result<Field, String> {
    let name = f["name"].as_str().unwrap_or_default().to_owned();
    let mut field = Field::new(name.clone(), type_ref(&f["type"], rename)?, |_| {
        FieldFuture::new(async { Ok(None::<Value>) })
    });
    for a in f["args"].as_array().into_iter().flatten() {
        field = field.argument(input_value(a, rename)?);
    }
    if let Some(d) = f["description"].as_str() {
        field = field.description(d);
    }
    if f["isDeprecated"] == true {
        field = field.deprecation(f["deprecationReason"].as_str());
    }
    if let Some(s) = scopes.get(&format!("{ty}.{name}")) {
        let list = Value::List(vec![Value::List(
            s.iter().map(|x| Value::String(x.clone())).collect(),
        )]);
        field = field.directive(Directive::new("requiresScopes").argument("scopes", list));
    }
    Ok(field)
}

fn input_value(a: &Json, rename: &impl Fn(&str) -> String) -> Result<InputValue, String> {
    let mut v = InputValue::new(
        a["name"].as_str().unwrap_or_default(),
        type_ref(&a["type"], rename)?,
    );
    if let Some(d) = a["description"].as_str() {
        v = v.description(d);
    }
    if let Some(default) = a["defaultValue"].as_str() {
        v = v.default_value(literal(default)?);
    }
    Ok(v)
}

/// A GraphQL literal (an introspected `defaultValue`) as a value.
fn literal(text: &str) -> Result<Value, String> {
    let doc = async_graphql::parser::parse_query(format!("query($v: Int = {text}) {{ a }}"))
        .map_err(|e| format!("default value `{text}`: {e}"))?;
    doc.operations
        .iter()
        .next()
        .and_then(|(_, op)| op.node.variable_definitions.first().cloned())
        .and_then(|v| v.node.default_value.map(|d| d.node))
        .ok_or_else(|| format!("default value `{text}` is not a literal"))
}

fn type_ref(t: &Json, rename: &impl Fn(&str) -> String) -> Result<TypeRef, String> {
    match t["kind"].as_str() {
        Some("NON_NULL") => Ok(TypeRef::NonNull(Box::new(type_ref(&t["ofType"], rename)?))),
        Some("LIST") => Ok(TypeRef::List(Box::new(type_ref(&t["ofType"], rename)?))),
        Some(_) => t["name"]
            .as_str()
            .map(|n| TypeRef::Named(rename(n).into()))
            .ok_or_else(|| "a named type without a name".to_owned()),
        None => Err("a type reference nested too deep".into()),
    }
}
