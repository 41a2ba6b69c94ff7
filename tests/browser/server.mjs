// Starts a real tokengate for the browser suite: builds it with `cargo build`
// (unless TOKENGATE_BIN names a binary), runs it on a free port with a fresh
// SQLite database in a temp directory and a known administrator.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const ADMIN_EMAIL = 'ada@example.com';
export const ADMIN_PASSWORD = 'correct-horse-battery-staple';

function binary() {
  if (process.env.TOKENGATE_BIN) return process.env.TOKENGATE_BIN;
  const built = spawnSync('cargo', ['build', '--bin', 'tokengate'], { cwd: repoRoot, stdio: 'inherit' });
  if (built.status !== 0) throw new Error(`cargo build failed (${built.status})`);
  return join(repoRoot, 'target', 'debug', 'tokengate');
}

/** Starts the server; resolves to { url, stop() } once it listens. */
export async function startServer() {
  const bin = binary();
  const dir = mkdtempSync(join(tmpdir(), 'tokengate-browser-'));
  const child = spawn(
    bin,
    [
      '--listen', '127.0.0.1:0',
      '--database-url', `sqlite://${join(dir, 'tokengate.db')}?mode=rwc`,
      '--last-used-flush-interval', '1s',
    ],
    {
      cwd: dir,
      env: {
        ...process.env,
        TOKENGATE_ADMIN_EMAIL: ADMIN_EMAIL,
        TOKENGATE_ADMIN_PASSWORD: ADMIN_PASSWORD,
        TOKENGATE_LOG: process.env.TOKENGATE_LOG || 'warn',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  // Never leave the server behind, even when the suite crashes.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error('tokengate did not start within 60 s')), 60_000);
    child.once('exit', (code) => reject(new Error(`tokengate exited early with ${code}`)));
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      const m = /^listening on (http:\/\/\S+)$/.exec(line);
      if (m) resolveUrl(m[1]);
      else reject(new Error(`unexpected first line: ${line}`));
    });
  });
  return {
    url,
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
