//! bookstore: a small application built on tokengate (SPEC §7).
//!
//! Its own GraphQL fields (`books`, `addBook`, the subscription `bookAdded`),
//! its own scopes (`books:read`,
//! `books:write`), its own table and migration — and, around them, everything
//! tokengate is: sign-in, the console, tokens, OAuth, JWKS, metrics, the
//! playground and every subcommand.
//!
//! ```sh
//! cargo run --release --example bookstore              # serve on 127.0.0.1:8080
//! cargo run --release --example bookstore -- schema    # the SDL, scopes included
//! ```

use std::process::ExitCode;

use async_graphql::futures_util::{stream, Stream};
use async_graphql::{Context, Object, SimpleObject, Subscription, ID};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder, Set};
use tokengate::{requires_scope, Role, ScopeDef, TokenGate};
use tokio::sync::broadcast;

/// The longest title accepted, in characters.
pub const MAX_TITLE_LEN: usize = 200;

/// The bookstore: tokengate with the catalogue inside.
pub fn bookstore() -> TokenGate<BookQuery, BookMutation, BookSubscription> {
    TokenGate::new()
        .query(BookQuery)
        .mutation(BookMutation)
        .subscription(BookSubscription)
        .data(BookFeed(broadcast::channel(256).0))
        .scope(ScopeDef::new("books:read", "Read the catalogue").held_by([Role::Member]))
        .scope(ScopeDef::new("books:write", "Add books to the catalogue").held_by([Role::Member]))
        .migrations::<migrations::Migrator>()
}

fn main() -> ExitCode {
    bookstore().main()
}

/// A book in the catalogue.
#[derive(SimpleObject, Clone)]
pub struct Book {
    id: ID,
    title: String,
    /// The user who added it.
    added_by: ID,
    added_at: DateTime<Utc>,
}

impl From<book::Model> for Book {
    fn from(m: book::Model) -> Book {
        Book {
            id: ID(m.id.to_string()),
            title: m.title,
            added_by: ID(m.added_by),
            added_at: m.added_at,
        }
    }
}

/// The catalogue's queries.
#[derive(Default)]
pub struct BookQuery;

#[Object]
impl BookQuery {
    /// Every book, in the order added.
    #[graphql(directive = requires_scope::apply("books:read"))]
    async fn books(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Book>> {
        let db = tokengate::database(ctx)?;
        let rows = book::Entity::find()
            .order_by_asc(book::Column::Id)
            .all(db)
            .await?;
        Ok(rows.into_iter().map(Book::from).collect())
    }
}

/// The catalogue's mutations.
#[derive(Default)]
pub struct BookMutation;

#[Object]
impl BookMutation {
    /// Adds a book; the title is 1 to 200 characters of printable text.
    #[graphql(directive = requires_scope::apply("books:write"))]
    async fn add_book(&self, ctx: &Context<'_>, title: String) -> async_graphql::Result<Book> {
        let caller = tokengate::caller(ctx)?;
        let title = title.trim();
        if title.is_empty()
            || title.chars().count() > MAX_TITLE_LEN
            || title.chars().any(char::is_control)
        {
            return Err(tokengate::bad_user_input(format!(
                "a title is 1 to {MAX_TITLE_LEN} characters of printable text"
            )));
        }
        let row = book::ActiveModel {
            title: Set(title.to_owned()),
            added_by: Set(caller.user_id().to_owned()),
            added_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(tokengate::database(ctx)?)
        .await?;
        let book = Book::from(row);
        // No subscriber is not an error.
        let _ = tokengate::app_data::<BookFeed>(ctx)?.0.send(book.clone());
        Ok(book)
    }
}

/// Books added by this process, for `bookAdded`.
pub struct BookFeed(broadcast::Sender<Book>);

/// The catalogue's subscriptions.
#[derive(Default)]
pub struct BookSubscription;

#[Subscription]
impl BookSubscription {
    /// Each book as it is added (over WebSocket at `/api`).
    #[graphql(directive = requires_scope::apply("books:read"))]
    async fn book_added(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = Book>> {
        let added = tokengate::app_data::<BookFeed>(ctx)?.0.subscribe();
        Ok(stream::unfold(added, |mut added| async move {
            loop {
                match added.recv().await {
                    Ok(book) => return Some((book, added)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }))
    }
}

/// The `books` table.
pub mod book {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "books")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub title: String,
        pub added_by: String,
        pub added_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The bookstore's migrations, applied after tokengate's.
pub mod migrations {
    use sea_orm_migration::prelude::*;

    pub struct Migrator;

    #[async_trait::async_trait]
    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![Box::new(CreateBooks)]
        }
    }

    struct CreateBooks;

    impl MigrationName for CreateBooks {
        fn name(&self) -> &str {
            // Prefixed: tokengate's migrations share the table that records these.
            "bookstore_m0001_create_books"
        }
    }

    #[derive(DeriveIden)]
    enum Books {
        Table,
        Id,
        Title,
        AddedBy,
        AddedAt,
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateBooks {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Books::Table)
                        .col(
                            ColumnDef::new(Books::Id)
                                .big_integer()
                                .not_null()
                                .auto_increment()
                                .primary_key(),
                        )
                        .col(ColumnDef::new(Books::Title).string().not_null())
                        .col(ColumnDef::new(Books::AddedBy).string().not_null())
                        .col(
                            ColumnDef::new(Books::AddedAt)
                                .timestamp_with_time_zone()
                                .not_null(),
                        )
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_table(Table::drop().table(Books::Table).to_owned())
                .await
        }
    }
}
