/**
 * What every command pays for before it runs: Node parses all of the CLI's entry chunk and the chunks
 * it imports statically. The Kubernetes client and node-forge, most of the bundle, must stay behind
 * import(), so that esbuild's code splitting (esbuild.config.mjs) leaves them to the commands that
 * use them.
 */
import * as esbuild from 'esbuild';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// ws: the daemon's own port-forward streams (core/src/kube/pod-stream.ts), loaded with the client.
const ON_DEMAND = ['node_modules/@kubernetes/client-node/', 'node_modules/node-forge/', 'node_modules/ws/'];

t.test('main.ts does not statically import the Kubernetes client or node-forge', async (t) => {
  const { metafile } = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: { 'kubectl-telepresence': 'kubectl-plugin/src/main.ts' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    splitting: true,
    outdir: 'out',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const startUp = new Set<string>();
  const load = (file: string): void => {
    if (startUp.has(file)) return;
    startUp.add(file);
    for (const i of metafile.outputs[file]?.imports ?? []) {
      if (i.kind === 'import-statement' && !i.external) load(i.path);
    }
  };
  load('out/kubectl-telepresence.js');
  const inputsOf = (files: Iterable<string>): string[] => [...files].flatMap((f) => Object.keys(metafile.outputs[f]?.inputs ?? {}));
  const loaded = inputsOf(startUp);
  const bundled = inputsOf(Object.keys(metafile.outputs));
  for (const pkg of ON_DEMAND) {
    t.ok(bundled.some((p) => p.includes(pkg)), `${pkg} is bundled`);
    t.notOk(loaded.some((p) => p.includes(pkg)), `${pkg} is not loaded at start-up`);
  }
});
