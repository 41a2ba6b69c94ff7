// Builds the playground bundle: node build.mjs <outdir>, or --check to verify
// that a fresh build equals the committed dist/ byte for byte.
import { build } from 'esbuild';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const check = process.argv.includes('--check');
const outdir = check
  ? mkdtempSync(join(tmpdir(), 'tokengate-playground-'))
  : join(here, process.argv[2] || 'dist');

await build({
  absWorkingDir: here,
  entryPoints: { playground: 'src/playground.jsx' },
  outdir,
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  platform: 'browser',
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"production"' },
  legalComments: 'eof',
  charset: 'utf8',
  sourcemap: false,
  logLevel: 'warning',
});

if (check) {
  const committed = join(here, 'dist');
  const names = (d) => readdirSync(d).sort();
  const fresh = names(outdir);
  let ok = JSON.stringify(fresh) === JSON.stringify(names(committed));
  for (const name of fresh) {
    if (ok && !readFileSync(join(outdir, name)).equals(readFileSync(join(committed, name)))) {
      console.error(`playground/dist/${name} differs from a fresh build`);
      ok = false;
    }
  }
  rmSync(outdir, { recursive: true, force: true });
  if (!ok) {
    console.error('playground/dist is stale: run `npm ci && npm run build` in playground/ and commit dist/');
    process.exit(1);
  }
  console.log('playground/dist matches a fresh build');
}
