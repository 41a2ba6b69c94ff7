//! The layers of docs/architecture.md, checked: no module of `src/` imports
//! from a layer above its own, and no two modules import each other (directly
//! or through others). A change that breaks either fails here with the file
//! and the import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lowest first. Every top-level module of `src/` is in exactly one layer;
/// `lib.rs` (the library face) and `main.rs` sit above them all.
const LAYERS: &[(&str, &[&str])] = &[
    ("pure types", &["error", "request", "clock", "auth"]),
    (
        "core",
        &["core", "config", "db", "telemetry", "metrics", "memory"],
    ),
    (
        "services",
        &[
            "tokens",
            "users",
            "service_accounts",
            "sessions",
            "password",
            "audit",
            "webhooks",
        ],
    ),
    ("guard", &["guard"]),
    ("adapters", &["graphql", "oauth", "web", "cli", "gateway"]),
    ("app", &["app", "server", "builder"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// Names at the crate root that are re-exports of a module's item.
const ROOT_REEXPORTS: &[(&str, &str)] = &[
    ("App", "app"),
    ("AppState", "app"),
    ("Config", "config"),
    ("AppError", "error"),
    ("TokenGate", "builder"),
    ("ScopeDef", "auth"),
    ("Role", "auth"),
    ("requires_scope", "graphql"),
    ("caller", "graphql"),
    ("Caller", "graphql"),
    ("database", "graphql"),
    ("bad_user_input", "graphql"),
    ("AuthMethod", "graphql"),
    ("app_data", "graphql"),
];

fn ident(text: &str) -> String {
    text.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The first name of each item of a `{…}` group (nested groups included).
fn group_heads(group: &str, found: &mut BTreeSet<String>) {
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                found.insert(ident(&group[start..i]));
                return;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                found.insert(ident(&group[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
}

/// The crate-root names a source text uses: `crate::x`, `crate::{x, y::{…}}`,
/// or `super::…::x` climbing to the root from a module `depth` deep
/// (`src/x.rs` and `src/x/mod.rs` are 1 deep, `src/x/y.rs` 2).
fn imports_at(text: &str, depth: usize) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let climb = "super::".repeat(depth);
    for prefix in ["crate::", climb.as_str()]
        .into_iter()
        .filter(|p| !p.is_empty())
    {
        let mut rest = text;
        while let Some(i) = rest.find(prefix) {
            let after = &rest[i + prefix.len()..];
            let preceded_by_ident = rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':');
            if !preceded_by_ident && !after.starts_with("super::") {
                match after.strip_prefix('{') {
                    Some(group) => group_heads(group, &mut found),
                    None => {
                        found.insert(ident(after));
                    }
                }
            }
            rest = after;
        }
    }
    found.remove("");
    found
        .into_iter()
        .map(|name| {
            ROOT_REEXPORTS
                .iter()
                .find(|(item, _)| *item == name)
                .map_or(name, |(_, module)| (*module).to_owned())
        })
        .collect()
}

fn imports(text: &str) -> BTreeSet<String> {
    imports_at(text, 0)
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_their_own_layer_or_below_and_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            problems.push(format!(
                "src/{module} is in no layer: add it to LAYERS here and to docs/architecture.md"
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let depth =
            rel.components().count() - usize::from(rel.file_name().is_some_and(|n| n == "mod.rs"));
        for dep in imports_at(&text, depth) {
            if dep == module {
                continue;
            }
            let Some(theirs) = layer_of(&dep) else {
                continue; // not a module of src/ (`self`, a macro path, an extern name)
            };
            if theirs > own {
                problems.push(format!(
                    "{} ({}) imports crate::{dep} ({}), a layer above",
                    rel.display(),
                    LAYERS[own].0,
                    LAYERS[theirs].0
                ));
            }
            edges.entry(module.clone()).or_default().insert(dep);
        }
    }
    // No cycles between modules: depth-first search for a back edge.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        problems: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut cycle = path[at..].to_vec();
            cycle.push(m.to_owned());
            problems.push(format!("import cycle: {}", cycle.join(" → ")));
            return;
        }
        if !done.insert(m.to_owned()) {
            return;
        }
        path.push(m.to_owned());
        for d in edges.get(m).into_iter().flatten() {
            visit(d, edges, path, done, problems);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        visit(m, &edges, &mut Vec::new(), &mut done, &mut problems);
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_import_scanner_sees_plain_grouped_nested_reexported_and_super_imports() {
    let text = "use crate::auth::Principal;\nuse crate::{db, tokens::{policy, Grant}, app::App};\nfn f() { crate::web::page(); }\n// $crate::x is a macro path\nuse crate::AppError;\n";
    let found: Vec<_> = imports(text).into_iter().collect();
    assert_eq!(found, ["app", "auth", "db", "error", "tokens", "web"]);
    // From src/a/b.rs, `super::super::x` is the crate root's x; `super::c` is a sibling.
    let found: Vec<_> = imports_at("use super::super::server;\nuse super::sibling;\n", 2)
        .into_iter()
        .collect();
    assert_eq!(found, ["server"]);
    let found: Vec<_> = imports_at("use super::Config;\n", 1).into_iter().collect();
    assert_eq!(found, ["config"]);
}
