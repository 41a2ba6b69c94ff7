//! Document limits async-graphql does not have (it limits depth and complexity
//! itself), checked once per distinct document: aliases, which let one request
//! multiply expensive fields, and the fields fragments expand to. Documents
//! that pass are kept parsed, keyed by their text, so a query sent again (the
//! usual case: clients send the same few documents) is neither parsed nor
//! counted again. Validation, the scope guard and execution still run on every
//! request.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult};

/// Longest document kept parsed (longer ones are parsed every time).
const MAX_CACHED_QUERY: usize = 16 * 1024;
/// What the cache may hold, in its weigher's units: a parsed document takes
/// up to ~100 bytes per byte of text (`a ` is a whole field node), so each
/// entry weighs 100 × its text + 512, and the cache holds at most ~16 MiB.
const CACHE_WEIGHT: u64 = 16 << 20;

/// The limits, and the documents that passed them.
pub struct DocumentLimits {
    /// At most this many aliases per document.
    pub max_aliases: usize,
    /// At most this many fields per operation once fragments are expanded.
    pub max_expanded_fields: u64,
    passed: moka::sync::Cache<Arc<str>, Arc<ExecutableDocument>>,
}

impl DocumentLimits {
    /// Limits with an empty cache of parsed documents.
    pub fn new(max_aliases: usize, max_expanded_fields: u64) -> Self {
        DocumentLimits {
            max_aliases,
            max_expanded_fields,
            passed: moka::sync::Cache::builder()
                .max_capacity(CACHE_WEIGHT)
                .weigher(|query: &Arc<str>, _| {
                    u32::try_from(query.len() * 100 + 512).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }
}

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentLimitsExtension {
            max_aliases: self.max_aliases,
            max_expanded_fields: self.max_expanded_fields,
            passed: self.passed.clone(),
        })
    }
}

struct DocumentLimitsExtension {
    max_aliases: usize,
    max_expanded_fields: u64,
    passed: moka::sync::Cache<Arc<str>, Arc<ExecutableDocument>>,
}

fn count(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + count(&f.node.selection_set.node)
            }
            Selection::InlineFragment(f) => count(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// A limit on how many fields a document expands to through its fragments.
/// A fragment spread many times, nested, multiplies (`...a` three times in
/// `b`, `...b` three times in `c`, …): the document stays small while the
/// work of every later walk over it, async-graphql's own checks included,
/// grows exponentially. Counted once per fragment, so counting is linear.
/// Fields a selection set expands to; `None` on a fragment cycle.
fn expanded<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    memo: &mut std::collections::HashMap<&'a str, Option<u64>>,
    depth: usize,
) -> Option<u64> {
    if depth > 256 {
        return None;
    }
    let mut total: u64 = 0;
    for item in &set.items {
        let n = match &item.node {
            Selection::Field(f) => {
                1u64.saturating_add(expanded(doc, &f.node.selection_set.node, memo, depth + 1)?)
            }
            Selection::InlineFragment(f) => {
                expanded(doc, &f.node.selection_set.node, memo, depth + 1)?
            }
            Selection::FragmentSpread(s) => {
                let Some((name, fragment)) =
                    doc.fragments.get_key_value(&s.node.fragment_name.node)
                else {
                    continue; // validation reports it
                };
                match memo.get(name.as_str()) {
                    Some(Some(n)) => *n,
                    Some(None) => return None, // being counted: a cycle
                    None => {
                        memo.insert(name.as_str(), None);
                        let n = expanded(doc, &fragment.node.selection_set.node, memo, depth + 1)?;
                        memo.insert(name.as_str(), Some(n));
                        n
                    }
                }
            }
        };
        total = total.saturating_add(n);
    }
    Some(total)
}

/// Aliases in a document, its fragments' included.
fn aliases(doc: &ExecutableDocument) -> usize {
    doc.operations
        .iter()
        .map(|(_, op)| count(&op.node.selection_set.node))
        .sum::<usize>()
        + doc
            .fragments
            .values()
            .map(|f| count(&f.node.selection_set.node))
            .sum::<usize>()
}

impl DocumentLimitsExtension {
    /// Refuses a document over a limit.
    fn check(&self, doc: &ExecutableDocument) -> ServerResult<()> {
        let aliases = aliases(doc);
        if aliases > self.max_aliases {
            return Err(ServerError::new(
                format!(
                    "the query uses {aliases} aliases; at most {} are allowed",
                    self.max_aliases
                ),
                None,
            ));
        }
        let mut memo = std::collections::HashMap::new();
        for (_, op) in doc.operations.iter() {
            match expanded(doc, &op.node.selection_set.node, &mut memo, 0) {
                Some(n) if n <= self.max_expanded_fields => {}
                Some(n) => {
                    return Err(ServerError::new(
                        format!(
                            "the document expands to {n} fields through its fragments; at most {} are allowed",
                            self.max_expanded_fields
                        ),
                        None,
                    ))
                }
                None => {
                    return Err(ServerError::new(
                        "the document's fragments spread each other in a cycle, or nest too deep",
                        None,
                    ))
                }
            }
        }
        Ok(())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for DocumentLimitsExtension {
    /// Before async-graphql's parse step: its own depth and directive checks run
    /// inside that step and follow every spread, so the document is parsed here
    /// (or taken parsed from the cache), checked first, and handed on parsed.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        if let Some(doc) = self.passed.get(request.query.as_str()) {
            request.set_parsed_query(ExecutableDocument::clone(&doc));
        } else if let Ok(doc) = async_graphql::parser::parse_query(&request.query) {
            // Parsed from the text even when the request carries a parsed
            // document already: the cache is keyed by the text, so what it
            // keeps must be that text's document.
            self.check(&doc)?;
            if request.query.len() <= MAX_CACHED_QUERY {
                self.passed
                    .insert(Arc::from(request.query.as_str()), Arc::new(doc.clone()));
            }
            request.set_parsed_query(doc);
        }
        // A document that does not parse is reported by the parse step as usual.
        next.run(ctx, request).await
    }
}
