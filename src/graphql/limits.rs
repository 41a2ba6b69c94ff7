//! Document limits async-graphql does not have (it limits depth and complexity
//! itself), checked once per distinct document: aliases, which let one request
//! multiply expensive fields, and the fields fragments expand to. Documents
//! that pass are kept parsed, keyed by their text, so a query sent again (the
//! usual case: clients send the same few documents) is neither parsed nor
//! counted again. Validation is remembered too, for requests without
//! variables: async-graphql's rules then depend only on the schema and the
//! document (not on the operation chosen), so a document that passed them
//! passes again (its complexity, depth and cache hints included). A request with variables is
//! validated every time, since some rules read their values. A custom
//! `complexity` function of an application's field runs during validation, so
//! its first answer for a document is kept: it must depend only on its
//! arguments. The scope guard and execution run on every request.

use std::sync::Arc;

use async_graphql::extensions::{ExtensionContext, NextPrepareRequest, NextValidation};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, ValidationResult};

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
    passed: moka::sync::Cache<Arc<str>, Arc<Passed>>,
}

/// A document that passed the limits, and what validating it gave when a
/// request sent it without variables. That result does not depend on the
/// operation the request names: every operation of the document is visited,
/// and the name only decides whose variables a rule reads, of which there are
/// none. The cache belongs to one schema, so the result holds for it.
struct Passed {
    doc: ExecutableDocument,
    validated: std::sync::OnceLock<ValidationResult>,
}

impl Passed {
    fn new(doc: ExecutableDocument) -> Self {
        Passed {
            doc,
            validated: std::sync::OnceLock::new(),
        }
    }
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

    /// The limits' part of one request's extension (see `graphql::Checks`).
    pub(crate) fn for_request(&self) -> DocumentLimitsExtension {
        DocumentLimitsExtension {
            max_aliases: self.max_aliases,
            max_expanded_fields: self.max_expanded_fields,
            passed: self.passed.clone(),
            this: std::sync::OnceLock::new(),
        }
    }
}

/// Made for each request.
pub(crate) struct DocumentLimitsExtension {
    max_aliases: usize,
    max_expanded_fields: u64,
    passed: moka::sync::Cache<Arc<str>, Arc<Passed>>,
    /// This request's cached document, when the request has no variables (its
    /// validation may then be remembered).
    this: std::sync::OnceLock<Arc<Passed>>,
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

impl DocumentLimitsExtension {
    /// Before async-graphql's parse step: its own depth and directive checks run
    /// inside that step and follow every spread, so the document is parsed here
    /// (or taken parsed from the cache), checked first, and handed on parsed.
    pub(crate) async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        let passed = if let Some(passed) = self.passed.get(request.query.as_str()) {
            request.set_parsed_query(passed.doc.clone());
            Some(passed)
        } else if let Ok(doc) = async_graphql::parser::parse_query(&request.query) {
            // Parsed from the text even when the request carries a parsed
            // document already: the cache is keyed by the text, so what it
            // keeps must be that text's document.
            self.check(&doc)?;
            let passed = (request.query.len() <= MAX_CACHED_QUERY).then(|| {
                let passed = Arc::new(Passed::new(doc.clone()));
                self.passed
                    .insert(Arc::from(request.query.as_str()), passed.clone());
                passed
            });
            request.set_parsed_query(doc);
            passed
        } else {
            None
        };
        if let Some(passed) = passed.filter(|_| request.variables.is_empty()) {
            let _ = self.this.set(passed);
        }
        // A document that does not parse is reported by the parse step as usual.
        next.run(ctx, request).await
    }

    /// A document validated before without variables is not validated again
    /// (the module's note and [`Passed`]'s say why that is sound). Only a
    /// passed validation is remembered.
    pub(crate) async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let Some(passed) = self.this.get() else {
            return next.run(ctx).await;
        };
        if let Some(result) = passed.validated.get() {
            return Ok(*result);
        }
        let result = next.run(ctx).await?;
        let _ = passed.validated.set(result);
        Ok(result)
    }
}
