//! Memory the process keeps: how the C allocator is tuned at start-up.
//!
//! glibc's malloc gives threads that contend for it arenas of their own, up to
//! eight per core, and memory freed in an arena other than the main one is
//! rarely given back to the system. tokengate's threads are the Tokio workers,
//! the blocking pool (argon2) and one thread per SQLite connection: under load
//! each of them ends up with an arena, holding its high-water mark for good.
//! Measured with `ONLY=rest BACKENDS=sqlite scripts/bench.sh` (BENCHMARKS.md):
//! peak RSS across the write, revoke-mix and read scenarios 72.6–79.3 MiB with
//! glibc's default, 57.2 MiB with as many arenas as cores, for the same
//! throughput (the workers, one per core, are the threads that allocate most).

/// Caps glibc's malloc arenas at the number of cores (at least two). Call it
/// first thing in `main`, before any thread starts: arenas made earlier stay.
/// `MALLOC_ARENA_MAX` in the environment, when set, wins (glibc reads it
/// itself). Other allocators and platforms: does nothing.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt takes no pointers and only changes a tuning value;
        // glibc takes the main arena's lock while it does.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
