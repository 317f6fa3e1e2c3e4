// Builds every artifact of telepresence-ts: one esbuild call per artifact, all bundled for Node 18
// (the cluster images' floor: Debian bookworm's nodejs), with source maps. `npm run build`.
//
// Where the output goes: each artifact lands where its consumer looks for it, and every dist/
// folder gets a package.json naming its module format so Node never guesses.
//   dist/kubectl-telepresence.js      the CLI (ESM), executable; it is also the daemon (`daemon-foreground`)
//   dist/chunks/*.js                  the parts of the CLI only some commands load: the Kubernetes
//                                     client, node-forge (install)
//   dist/bin/kubectl-telepresence     shim: put dist/bin on PATH and kubectl's plugin discovery
//                                     finds it, so `kubectl telepresence ...` works
//   vscode-extension/dist/extension.js  the extension (CJS, `vscode` external): the manifest's main
//   vscode-extension/dist/{daemon,kube-helper}.js  the daemon the extension starts and its
//                                     Kubernetes helper (CJS), shipped in the .vsix
//   cluster/dist/{manager,injector,agent}.js  the in-cluster programs (CJS): the build context of
//                                     cluster/images/*.Dockerfile
import * as esbuild from 'esbuild';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(fileURLToPath(import.meta.url));
// TP_BUILD_VERSION stamps another version, and TP_BUILD_OUT puts the dist/ folders under another
// root: the upgrade suite builds a newer release of the same source beside this one.
const version = process.env.TP_BUILD_VERSION || JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
const OUT = process.env.TP_BUILD_OUT || ROOT;

const CLI_DIST = join(OUT, 'dist');
const EXTENSION_DIST = join(OUT, 'vscode-extension', 'dist');
const CLUSTER_DIST = join(OUT, 'cluster', 'dist');

/** Settings shared by every artifact. */
const common = {
  absWorkingDir: ROOT,
  bundle: true,
  platform: 'node',
  target: 'node18',
  sourcemap: true,
  // Unminified: these run on servers and developer machines, where readable stacks beat bytes.
  minify: false,
  // core/src/version.ts reads this; unbundled code (tests) falls back to a development version.
  // core/src/contracts.ts: where `install` pulls images from by default (a release sets it; see
  // scripts/release-settings.sh); unset, `tp-local`.
  define: { __TP_VERSION__: JSON.stringify(version), __TP_IMAGE_REGISTRY__: JSON.stringify(process.env.TP_IMAGE_REGISTRY ?? '') },
  logLevel: 'warning',
};

/** The CLI is ESM (yargs' ESM build uses import.meta); CJS dependencies bundled into it still call require. */
const ESM_REQUIRE_BANNER = "import { createRequire as __tpCreateRequire } from 'node:module'; const require = __tpCreateRequire(import.meta.url);";

// sh, not node, so the shim works whatever module format Node would assume for an extensionless
// file; readlink -f follows a symlinked shim (e.g. from ~/bin) back to dist/bin. No
// --enable-source-maps: parsing the bundle's map costs every command most of a second; set
// NODE_OPTIONS=--enable-source-maps to have stack traces point into the sources. The `--` ends
// node's own options: Node 20 reads `--env-file` even after the script name, which would take the
// intercept's --env-file for itself.
const CLI_SHIM = `#!/bin/sh
here=$(dirname -- "$(readlink -f -- "$0")")
exec node -- "$here/../kubectl-telepresence.js" "$@"
`;

/**
 * Leaves @grpc/proto-loader (and protobufjs under it) out of a bundle: a quarter of what the CLI
 * would otherwise compile at start-up. grpc-js requires it only to serve channelz and ORCA, loading .proto files from its own
 * package folder, which a bundle does not have: that path fails with or without the loader.
 */
const omitGrpcProtoLoader = {
  name: 'omit-grpc-proto-loader',
  setup(build) {
    build.onResolve({ filter: /^@grpc\/proto-loader$/ }, (args) => ({ path: args.path, namespace: 'omitted' }));
    build.onLoad({ filter: /.*/, namespace: 'omitted' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`${args.path} is not bundled (grpc-js channelz and ORCA are unavailable)`)});`,
      loader: 'js',
    }));
  },
};

function writePackageJson(dir, type, extra = {}) {
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ type, ...extra }, null, 2)}\n`);
}

async function buildCli() {
  const outfile = join(CLI_DIST, 'kubectl-telepresence.js');
  await esbuild.build({
    ...common,
    entryPoints: { 'kubectl-telepresence': 'kubectl-plugin/src/main.ts' },
    outdir: CLI_DIST,
    // Node reads and compiles an ES module, and all it imports statically, before running any of it:
    // one bundle would make every command pay for all of it. Splitting moves what core loads with
    // import() (the Kubernetes client, node-forge) into chunks that only the commands using them read.
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    plugins: [omitGrpcProtoLoader],
    format: 'esm',
    // Every chunk gets the banner (Node skips the #! line of a module): the bundled CommonJS in any of
    // them may call require.
    banner: { js: `#!/usr/bin/env node\n${ESM_REQUIRE_BANNER}` },
  });
  chmodSync(outfile, 0o755);
  mkdirSync(join(CLI_DIST, 'bin'), { recursive: true });
  writeFileSync(join(CLI_DIST, 'bin', 'kubectl-telepresence'), CLI_SHIM, { mode: 0o755 });
  // The version too: the extension's daemon reads it to tell whether a CLI it finds is of its own
  // version, without running it (vscode-extension/src/cli-bundle.ts). The release carries this file.
  writePackageJson(CLI_DIST, 'module', { version });
  return [outfile, join(CLI_DIST, 'bin', 'kubectl-telepresence')];
}

async function buildExtension() {
  const outfile = join(EXTENSION_DIST, 'extension.js');
  await esbuild.build({
    ...common,
    entryPoints: ['vscode-extension/src/extension.ts'],
    outfile,
    format: 'cjs',
    // Provided by the extension host at run time; there is no npm package to bundle.
    external: ['vscode'],
  });
  // The daemon the extension starts when none runs (the CLI's, without the CLI): ships in the .vsix.
  const daemonFile = join(EXTENSION_DIST, 'daemon.js');
  // Its Kubernetes helper: watches and installs from plain Node, outside the extension host.
  const helperFile = join(EXTENSION_DIST, 'kube-helper.js');
  await Promise.all([
    esbuild.build({ ...common, entryPoints: ['vscode-extension/src/daemon-main.ts'], outfile: daemonFile, format: 'cjs' }),
    esbuild.build({ ...common, entryPoints: ['vscode-extension/src/kube-helper-main.ts'], outfile: helperFile, format: 'cjs' }),
  ]);
  writePackageJson(EXTENSION_DIST, 'commonjs');
  return [outfile, daemonFile, helperFile];
}

async function buildClusterProgram(name) {
  const outfile = join(CLUSTER_DIST, `${name}.js`);
  await esbuild.build({
    ...common,
    entryPoints: [`cluster/src/${name}/main.ts`],
    outfile,
    // CJS, so the images can run the file without a package.json beside it.
    format: 'cjs',
  });
  return [outfile];
}

async function main() {
  for (const dir of [CLI_DIST, EXTENSION_DIST, CLUSTER_DIST]) {
    rmSync(dir, { recursive: true, force: true });
  }
  const outputs = await Promise.all([
    buildCli(),
    buildExtension(),
    buildClusterProgram('manager'),
    buildClusterProgram('injector'),
    buildClusterProgram('agent'),
  ]);
  writePackageJson(CLUSTER_DIST, 'commonjs');
  for (const file of outputs.flat()) {
    process.stdout.write(`built ${file.startsWith(ROOT) ? file.slice(ROOT.length + 1) : file}\n`);
  }
  process.stdout.write(`version ${version}\n`);
}

await main();
