// Stages the Palisade CNI plugin as a self-contained file tree that runs on a node with
// no Node.js, no particular glibc and no PATH:
//
//   OUT/palisade                   POSIX sh launcher (the CNI `type: palisade` binary)
//   OUT/palisade.d-<hash>/node     the Node.js binary
//   OUT/palisade.d-<hash>/lib/     its dynamic loader and shared libraries (from ldd)
//   OUT/palisade.d-<hash>/app/     the shim: the single-file bundle palisade-cni.mjs (built
//                                  by `make build-ts`, cmd/palisade-cni-bundle.ts), the
//                                  files it loads lazily, and a {"type":"module"} marker
//   OUT/install-cni.sh             installs OUT into a CNI bin dir (atomic rename)
//
// The launcher runs node through the bundled loader with --library-path and
// --inhibit-cache (no host /etc/ld.so.cache), so the host's libc and libstdc++ are never
// used. <hash> is a content hash, so a new version installs
// next to the old one and the launcher switches with one rename.
//
// The shim must import only node: builtins and its own files; anything else (an npm
// package, a native addon) fails the staging with the offending import named. The
// bundle is the default entry because the plugin starts once per pod and command: one
// module to load instead of the whole dist/pkg/cni graph (docs/cni.md). A bundle older
// than the tsc output next to it is refused, as bin/palisade-cni never runs a stale one.
//
// Used by .ci/Dockerfile and by test/unit/chart/cni-install.test.ts.
//   node stage-cni.mjs --dist DIR --node FILE --out DIR [--entry palisade-cni.mjs]
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { builtinModules } from 'node:module';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';

function fail(msg) {
  console.error(`stage-cni: ${msg}`);
  process.exit(1);
}

/** The single-file shim `make build-ts` writes (cmd/palisade-cni-bundle.ts). */
const DEFAULT_ENTRY = 'palisade-cni.mjs';
/** The tsc output the bundle is built from; a bundle older than it is stale. */
const UNBUNDLED_ENTRY = 'cmd/palisade-cni.js';

function parseArgs(argv) {
  const opts = { entry: DEFAULT_ENTRY };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i]?.replace(/^--/, '');
    const val = argv[i + 1];
    if (!['dist', 'node', 'out', 'entry'].includes(key ?? '') || val === undefined) {
      fail(`usage: stage-cni.mjs --dist DIR --node FILE --out DIR [--entry ${DEFAULT_ENTRY}]`);
    }
    opts[key] = val;
  }
  for (const k of ['dist', 'node', 'out']) if (!opts[k]) fail(`missing --${k}`);
  return opts;
}

// Static `import ... from`, `export ... from`, bare `import '...'` and literal `import('...')`.
const IMPORT_RE = /(?:\bfrom\s*|\bimport\s*\(?\s*)(['"])([^'"]+)\1/g;
// `new URL('./x.js', import.meta.url)`: how the bundle names a lazily imported sibling.
const URL_RE = /\bnew\s+URL\(\s*(['"])([^'"]+)\1\s*,\s*import\.meta\.url\s*\)/g;
const builtins = new Set(builtinModules);

/** Files (relative to dist) the entry needs, in a stable order; fails on foreign imports. */
export function importClosure(dist, entry) {
  const seen = new Set();
  const queue = [entry];
  while (queue.length > 0) {
    const rel = queue.shift();
    if (seen.has(rel)) continue;
    const file = join(dist, rel);
    if (!existsSync(file)) fail(`${rel}: not found in ${dist} (run the TypeScript build first)`);
    seen.add(rel);
    const src = readFileSync(file, 'utf8').replace(/\/\/# sourceMappingURL=.*$/m, '');
    for (const m of [...src.matchAll(IMPORT_RE), ...src.matchAll(URL_RE)]) {
      const spec = m[2];
      if (spec.startsWith('node:') || builtins.has(spec)) continue;
      if (!spec.startsWith('./') && !spec.startsWith('../')) {
        fail(`${rel} imports '${spec}': the CNI plugin may import only node: builtins and its own files`);
      }
      const target = relative(dist, resolve(dirname(file), spec));
      if (target.startsWith('..')) fail(`${rel} imports '${spec}' from outside ${dist}`);
      queue.push(target);
    }
  }
  return [...seen].sort();
}

/** Fails when the default entry, the bundle, is missing or older than the tsc output. */
function checkBundle(dist, entry) {
  if (entry !== DEFAULT_ENTRY) return;
  const bundle = join(dist, DEFAULT_ENTRY);
  if (!existsSync(bundle)) {
    fail(`${DEFAULT_ENTRY}: not found in ${dist} (run make build-ts, or node dist/cmd/palisade-cni-bundle.js after tsc)`);
  }
  const tsc = join(dist, UNBUNDLED_ENTRY);
  if (existsSync(tsc) && statSync(tsc).mtimeMs > statSync(bundle).mtimeMs) {
    fail(`${DEFAULT_ENTRY}: older than ${UNBUNDLED_ENTRY}, rebuild it (node dist/cmd/palisade-cni-bundle.js)`);
  }
}

/** The dynamic loader and libraries `node` links against, as absolute paths ([] if static). */
function sharedLibraries(node) {
  let out;
  try {
    out = execFileSync('ldd', [node], { encoding: 'utf8' });
  } catch (err) {
    if (/not a dynamic executable/.test(String(err.stderr ?? err.stdout ?? ''))) return { loader: null, libs: [] };
    fail(`ldd ${node}: ${err.message}`);
  }
  let loader = null;
  const libs = [];
  for (const line of out.split('\n')) {
    const arrow = line.match(/=>\s*(\/\S+)/);
    if (arrow) { libs.push(arrow[1]); continue; }
    if (/not found/.test(line)) fail(`ldd ${node}: ${line.trim()}`);
    const direct = line.match(/^\s*(\/\S+)\s+\(/);
    if (direct) loader = direct[1];
  }
  if (libs.length > 0 && !loader) fail(`ldd ${node}: no dynamic loader in output`);
  return { loader, libs };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const dist = resolve(opts.dist);
  const out = resolve(opts.out);
  checkBundle(dist, opts.entry);
  const files = importClosure(dist, opts.entry);
  const { loader, libs } = sharedLibraries(resolve(opts.node));

  // Build under a temporary name so a failed run leaves no half tree at OUT.
  const work = `${out}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  const tree = join(work, 'tree');
  try {
    mkdirSync(join(tree, 'app'), { recursive: true });
    for (const f of files) {
      mkdirSync(dirname(join(tree, 'app', f)), { recursive: true });
      copyFileSync(join(dist, f), join(tree, 'app', f));
    }
    // Marks the shim's .js files (the lazily loaded ones next to the bundle) as ESM and stops node's package.json lookup at app/.
    writeFileSync(join(tree, 'app', 'package.json'), '{"type":"module"}\n');
    copyFileSync(resolve(opts.node), join(tree, 'node'));
    chmodSync(join(tree, 'node'), 0o755);
    if (loader) {
      mkdirSync(join(tree, 'lib'));
      for (const lib of [loader, ...libs]) copyFileSync(lib, join(tree, 'lib', basename(lib)));
      chmodSync(join(tree, 'lib', basename(loader)), 0o755);
    }

    const hash = createHash('sha256');
    for (const f of listFiles(tree)) hash.update(`${f}\0`).update(readFileSync(join(tree, f)));
    const name = `palisade.d-${hash.digest('hex').slice(0, 12)}`;
    renameSync(tree, join(work, name));

    const run = loader
      ? `"$d/lib/${basename(loader)}" --inhibit-cache --library-path "$d/lib" "$d/node"`
      : '"$d/node"';
    writeFileSync(join(work, 'palisade'), [
      '#!/bin/sh',
      '# Palisade CNI plugin launcher, installed by the palisade agent DaemonSet.',
      '# Runs the plugin with its own Node.js and libraries from the tree next to it.',
      'case "$0" in',
      `  */*) d="\${0%/*}/${name}" ;;`,
      `  *) echo '{"cniVersion":"1.0.0","code":999,"msg":"palisade: invoke with a path"}'; exit 1 ;;`,
      'esac',
      'unset NODE_OPTIONS NODE_PATH',
      `exec ${run} "$d/app/${opts.entry}" "$@"`,
      '',
    ].join('\n'), { mode: 0o755 });
    copyFileSync(new URL('./install-cni.sh', import.meta.url), join(work, 'install-cni.sh'));
    chmodSync(join(work, 'install-cni.sh'), 0o755);

    rmSync(out, { recursive: true, force: true });
    renameSync(work, out);
    console.error(`stage-cni: staged ${name} (${files.length} files, ${libs.length} libraries) at ${out}`);
  } catch (err) {
    rmSync(work, { recursive: true, force: true });
    fail(err.message);
  }
}

function listFiles(dir, prefix = '') {
  const out = [];
  for (const e of readdirSyncSorted(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out;
}

function readdirSyncSorted(dir) {
  return readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) main();
