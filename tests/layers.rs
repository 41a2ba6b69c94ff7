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
    ("core", &["core", "config", "db", "telemetry", "metrics"]),
    (
        "services",
        &[
            "tokens",
            "users",
            "service_accounts",
            "sessions",
            "password",
            "audit",
        ],
    ),
    ("guard", &["guard"]),
    ("adapters", &["graphql", "oauth", "web", "cli"]),
    ("app", &["app", "server"]),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, mods)| mods.contains(&module))
}

/// The top-level modules a source text names through `crate::`.
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let preceded_by_ident = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
        if !preceded_by_ident {
            if let Some(group) = after.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.insert(name);
                    }
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
        rest = after;
    }
    found
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
        for dep in imports(&text) {
            if dep == module {
                continue;
            }
            let Some(theirs) = layer_of(&dep) else {
                continue; // not a module (a re-export at the crate root, such as `AppError`)
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
fn the_import_scanner_sees_plain_and_grouped_imports() {
    let text = "use crate::auth::Principal;\nuse crate::{db, tokens::policy};\nfn f() { crate::web::page(); }\n// $crate::x is a macro path\n";
    let found: Vec<_> = imports(text).into_iter().collect();
    assert_eq!(found, ["auth", "db", "tokens", "web"]);
}
