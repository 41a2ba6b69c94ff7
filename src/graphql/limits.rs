//! A limit on aliases per document (async-graphql limits depth and complexity
//! itself, but not aliases, which let one request multiply expensive fields).

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

pub struct AliasLimit(pub usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimitExtension(self.0))
    }
}

struct AliasLimitExtension(usize);

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

#[async_graphql::async_trait::async_trait]
impl Extension for AliasLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let aliases: usize = doc
            .operations
            .iter()
            .map(|(_, op)| count(&op.node.selection_set.node))
            .sum::<usize>()
            + doc
                .fragments
                .values()
                .map(|f| count(&f.node.selection_set.node))
                .sum::<usize>();
        if aliases > self.0 {
            return Err(ServerError::new(
                format!(
                    "the query uses {aliases} aliases; at most {} are allowed",
                    self.0
                ),
                None,
            ));
        }
        Ok(doc)
    }
}

/// A limit on how many fields a document expands to through its fragments.
/// A fragment spread many times, nested, multiplies (`...a` three times in
/// `b`, `...b` three times in `c`, …): the document stays small while the
/// work of every later walk over it, async-graphql's own checks included,
/// grows exponentially. Counted once per fragment, so counting is linear.
pub struct FragmentLimit(pub u64);

impl ExtensionFactory for FragmentLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(FragmentLimitExtension(self.0))
    }
}

struct FragmentLimitExtension(u64);

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

#[async_graphql::async_trait::async_trait]
impl Extension for FragmentLimitExtension {
    /// Before parsing proper: async-graphql's own depth and directive checks
    /// run inside the parse step and follow every spread, so the document is
    /// parsed here (the parse is kept on the request and not repeated) and
    /// counted first.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        if let Ok(doc) = request.parsed_query() {
            let mut memo = std::collections::HashMap::new();
            for (_, op) in doc.operations.iter() {
                match expanded(doc, &op.node.selection_set.node, &mut memo, 0) {
                    Some(n) if n <= self.0 => {}
                    Some(n) => {
                        return Err(ServerError::new(
                            format!(
                                "the document expands to {n} fields through its fragments; at most {} are allowed",
                                self.0
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
        }
        // A document that does not parse is reported by the parse step as usual.
        next.run(ctx, request).await
    }
}
