// Starts a real tokengate for the browser suite: builds it with `cargo build`
// (unless TOKENGATE_BIN names a binary), runs it on a free port with a fresh
// SQLite database in a temp directory and a known administrator. With
// { app: 'bookstore' } it starts the bookstore example instead (tokengate plus
// an application's own fields and scopes; `cargo build --example bookstore`,
// or BOOKSTORE_BIN), which takes the same flags and environment.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const ADMIN_EMAIL = 'ada@example.com';
export const ADMIN_PASSWORD = 'correct-horse-battery-staple';

// Where cargo puts what it builds: CARGO_TARGET_DIR (a relative one is taken
// from the repo, where cargo runs), else <repo>/target.
export const targetDir = process.env.CARGO_TARGET_DIR
  ? resolve(repoRoot, process.env.CARGO_TARGET_DIR)
  : join(repoRoot, 'target');

const APPS = {
  tokengate: { env: 'TOKENGATE_BIN', cargo: ['--bin', 'tokengate'], path: ['debug', 'tokengate'] },
  bookstore: { env: 'BOOKSTORE_BIN', cargo: ['--example', 'bookstore'], path: ['debug', 'examples', 'bookstore'] },
};

/** The binary of `app` ('tokengate' or 'bookstore'): the env override, or a fresh debug build. */
export function binary(app = 'tokengate') {
  const spec = APPS[app];
  if (!spec) throw new Error(`unknown app ${app}: one of ${Object.keys(APPS).join(', ')}`);
  if (process.env[spec.env]) return process.env[spec.env];
  const built = spawnSync('cargo', ['build', ...spec.cargo], { cwd: repoRoot, stdio: 'inherit' });
  if (built.status !== 0) throw new Error(`cargo build ${spec.cargo.join(' ')} failed (${built.status})`);
  return join(targetDir, ...spec.path);
}

/**
 * Starts the server (app: 'tokengate', the default, or 'bookstore'); resolves to
 * { url, databaseUrl, cli(), stop() } once it listens. `databaseUrl` shares a
 * database between servers (default: a fresh SQLite file); `args` adds flags;
 * `listen` picks the address (default: a free port); `env` adds variables.
 */
export async function startServer({ app = 'tokengate', databaseUrl: shared, args = [], listen = '127.0.0.1:0', env: extraEnv = {} } = {}) {
  const bin = binary(app);
  const dir = mkdtempSync(join(tmpdir(), 'tokengate-browser-'));
  const databaseUrl = shared || `sqlite://${join(dir, 'tokengate.db')}?mode=rwc`;
  const env = {
    ...process.env,
    TOKENGATE_ADMIN_EMAIL: ADMIN_EMAIL,
    TOKENGATE_ADMIN_PASSWORD: ADMIN_PASSWORD,
    TOKENGATE_LOG: process.env.TOKENGATE_LOG || 'warn',
    ...extraEnv,
  };
  const child = spawn(
    bin,
    ['--listen', listen, '--database-url', databaseUrl, '--last-used-flush-interval', '1s', ...args],
    { cwd: dir, env, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  // Never leave the server behind, even when the suite crashes.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`${app} did not start within 60 s`)), 60_000);
    child.once('exit', (code) => reject(new Error(`${app} exited early with ${code}`)));
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      const m = /^listening on (http:\/\/\S+)$/.exec(line);
      if (m) resolveUrl(m[1]);
      else reject(new Error(`unexpected first line: ${line}`));
    });
  });
  return {
    url,
    databaseUrl,
    /** The server's process id (to signal it). */
    pid: child.pid,
    /** Runs a subcommand of the same binary on the server's database (`user add …`): spawnSync's result. */
    cli(args, { input } = {}) {
      return spawnSync(bin, ['--database-url', databaseUrl, ...args], { cwd: dir, env, input, encoding: 'utf8' });
    },
    async stop() {
      process.off('exit', killOnExit);
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The PostgreSQL server the suite may use (trust auth), as the Rust suite does. */
export const PG_ADMIN_URL = process.env.TOKENGATE_TEST_PG_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * Creates a fresh PostgreSQL database with `psql` and returns { url, drop() },
 * or null when PostgreSQL is unreachable (outside CI the caller skips; with
 * CI=true it throws instead).
 */
export function freshPostgres() {
  const name = `tokengate_node_${process.pid}_${Date.now()}`;
  const made = spawnSync('psql', [PG_ADMIN_URL, '-q', '-c', `CREATE DATABASE ${name}`], { encoding: 'utf8' });
  if (made.status !== 0) {
    const ci = process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';
    if (ci) throw new Error(`PostgreSQL is required in CI: ${made.stderr || made.error}`);
    return null;
  }
  const url = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${name}`);
  return {
    url,
    drop() {
      spawnSync('psql', [PG_ADMIN_URL, '-q', '-c', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`]);
    },
  };
}

/** A TCP port free right now on 127.0.0.1 (for a server whose URL must be known before it starts). */
export async function freePort() {
  const { createServer } = await import('node:net');
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}
