//! The test runner (a `harness = false` binary on libtest-mimic): each module
//! declares its tests with [`both_backends!`] or [`single!`]; `main` runs them
//! with libtest's flags and summary line. PostgreSQL is probed once: when it is
//! unreachable outside CI, its tests are reported as ignored, never as passed.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::support::{in_ci, pg_admin_url, Backend};

/// What an async test returns to the runner.
pub type TestFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One declared test.
pub struct Test {
    /// `module_path!()` of the declaring module.
    pub module: &'static str,
    pub name: &'static str,
    pub body: Body,
}

/// How a declared test runs.
pub enum Body {
    /// `async fn(Backend)`, run as `NAME::sqlite` and `NAME::postgres` on a
    /// multi-thread runtime with two workers.
    Backends(fn(Backend) -> TestFuture),
    /// `fn()`.
    Sync(fn()),
    /// `async fn()` on a current-thread runtime (as `#[tokio::test]`).
    Async(fn() -> TestFuture),
}

/// Declares `async fn NAME(Backend)` tests, each run once per backend, as the
/// module's `BOTH_BACKENDS` (listed in `main.rs`).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        pub(crate) const BOTH_BACKENDS: &[$crate::harness::Test] = &[$(
            $crate::harness::Test {
                module: module_path!(),
                name: stringify!($name),
                body: $crate::harness::Body::Backends(|b| Box::pin($name(b))),
            },
        )*];
    };
}

/// Declares tests that run once, as the module's `SINGLE` (listed in
/// `main.rs`): `NAME` for a `fn()`, `async NAME` for an `async fn()`.
#[macro_export]
macro_rules! single {
    (@list [$($out:expr,)*]) => { [$($out,)*] };
    (@list [$($out:expr,)*] async $name:ident $(, $($rest:tt)*)?) => {
        $crate::single!(@list [$($out,)* $crate::harness::Test {
            module: module_path!(),
            name: stringify!($name),
            body: $crate::harness::Body::Async(|| Box::pin($name())),
        },] $($($rest)*)?)
    };
    (@list [$($out:expr,)*] $name:ident $(, $($rest:tt)*)?) => {
        $crate::single!(@list [$($out,)* $crate::harness::Test {
            module: module_path!(),
            name: stringify!($name),
            body: $crate::harness::Body::Sync($name),
        },] $($($rest)*)?)
    };
    ($($tests:tt)*) => {
        pub(crate) const SINGLE: &[$crate::harness::Test] = &$crate::single!(@list [] $($tests)*);
    };
}

/// The panic payload of [`skip`].
struct Skipped(String);

/// Ends the running test as skipped for a dependency this machine lacks: it is
/// reported as ignored with `reason`. With `CI` set, a missing dependency
/// fails the test instead.
pub fn skip(reason: &str) -> ! {
    if in_ci() {
        panic!("CI is set, but {reason}");
    }
    // resume_unwind: no panic message; the runner turns it into "ignored".
    panic::resume_unwind(Box::new(Skipped(reason.to_owned())))
}

/// Runs a test body, turning a [`skip`] into "ignored".
fn outcome(run: Box<dyn FnOnce() + Send>) -> Result<Completion, Failed> {
    match panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(()) => Ok(Completion::Completed),
        Err(payload) => match payload.downcast::<Skipped>() {
            Ok(skipped) => Ok(Completion::ignored_with(skipped.0)),
            // libtest-mimic reports it as a failure with the panic message.
            Err(other) => panic::resume_unwind(other),
        },
    }
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// One runnable test: a declared test, or one backend of it.
struct Case {
    name: String,
    needs_postgres: bool,
    run: Box<dyn FnOnce() + Send>,
}

impl Case {
    fn trial(self) -> Trial {
        let run = self.run;
        Trial::ignorable_test(self.name, move || outcome(run))
    }
}

/// The cases of one declared test.
fn cases(test: &Test) -> Vec<Case> {
    // "it::tokens" → "tokens::NAME", the names libtest gave them.
    let module = test.module.split_once("::").map_or(test.module, |(_, m)| m);
    let name = format!("{module}::{}", test.name);
    match test.body {
        Body::Backends(f) => [
            (Backend::Sqlite, "sqlite", false),
            (Backend::Postgres, "postgres", true),
        ]
        .into_iter()
        .map(|(backend, suffix, needs_postgres)| Case {
            name: format!("{name}::{suffix}"),
            needs_postgres,
            run: Box::new(move || multi_thread().block_on(f(backend))),
        })
        .collect(),
        Body::Sync(f) => vec![Case {
            name,
            needs_postgres: false,
            run: Box::new(f),
        }],
        Body::Async(f) => vec![Case {
            name,
            needs_postgres: false,
            run: Box::new(move || current_thread().block_on(f())),
        }],
    }
}

/// Why PostgreSQL cannot be used, or `None` when a connection works.
fn probe_postgres(url: &str) -> Option<String> {
    use sea_orm::sqlx::{postgres::PgConnection, Connection};
    current_thread().block_on(async {
        let connect = tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(url));
        match connect.await {
            Ok(Ok(conn)) => {
                conn.close().await.ok();
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("no answer within 5 s".into()),
        }
    })
}

/// Runs the declared tests with libtest's command line and summary.
pub fn main(declared: &[&[Test]]) -> ExitCode {
    let args = Arguments::from_args();
    let mut cases: Vec<Case> = declared.iter().copied().flatten().flat_map(cases).collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));

    // Probe PostgreSQL once, and only when a selected test needs it (the
    // ignored flag is what is being decided, so `--ignored` does not select).
    let selecting = Arguments {
        ignored: false,
        ..args.clone()
    };
    let wanted = cases
        .iter()
        .filter(|c| c.needs_postgres)
        .filter(|c| !selecting.is_filtered_out(&Trial::test(c.name.clone(), || Ok(()))))
        .count();
    let url = pg_admin_url();
    let unreachable = (wanted > 0).then(|| probe_postgres(&url)).flatten();
    let ci = in_ci();

    let trials = cases
        .into_iter()
        .map(|case| match (&unreachable, case.needs_postgres) {
            (Some(why), true) if ci => {
                let msg = format!("CI is set and PostgreSQL is unreachable at {url}: {why}");
                Trial::test(case.name, move || Err(msg.into()))
            }
            (Some(_), true) => case.trial().with_ignored_flag(true),
            _ => case.trial(),
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    let ran_ignored = args.ignored || args.include_ignored;
    if let (Some(why), false, false, false) = (&unreachable, ci, args.list, ran_ignored) {
        eprintln!(
            "SKIPPED: {wanted} PostgreSQL test{} (no server at {url}: {why}); set TOKENGATE_TEST_PG_URL or start PostgreSQL (CI=true makes this a failure)\n",
            if wanted == 1 { "" } else { "s" }
        );
    }
    conclusion.exit_code()
}
