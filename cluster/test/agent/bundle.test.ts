import * as esbuild from 'esbuild';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

// What the traffic-agent may carry: grpc-js and what it loads, and the generated stubs' runtime.
// Memory is the agent's budget (it runs in every intercepted pod): idle RSS tracks bundle size.
const ALLOWED = new Set(['@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs', 'long', 'lodash.camelcase', '@js-sdsl/ordered-map', '@bufbuild/protobuf']);

/** The npm packages bundled into the agent, as esbuild.config.mjs builds it. */
async function bundledPackages(): Promise<Set<string>> {
  const result = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: ['cluster/src/agent/main.ts'],
    bundle: true,
    platform: 'node',
    target: 'node18',
    format: 'cjs',
    write: false,
    metafile: true,
    outfile: 'agent.js',
    logLevel: 'silent',
  });
  const packages = new Set<string>();
  for (const input of Object.keys(result.metafile.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m?.[1] !== undefined) packages.add(m[1].startsWith('@protobufjs/') ? 'protobufjs' : m[1]);
  }
  return packages;
}

t.test('the agent bundle carries no Kubernetes client, TLS toolkit or CLI code', async (t) => {
  const packages = await bundledPackages();
  t.strictSame([...packages].filter((p) => !ALLOWED.has(p)).sort(), [], 'only the allowed packages');
});

