/**
 * Makes the project's test images available on the cluster's node, through the harness scripts
 * `test/cluster/images/build.sh` and `test/cluster/load-image.sh`, so an e2e suite works on any
 * cluster that `npm run cluster:up` brought up.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { loadClusterEnv } from './cluster-env.js';
import { ECHO_IMAGE } from './manifests.js';
import { formatCommandLine, processRunner, type ProcessRunner } from './process-runner.js';

const MARKER = join('test', 'cluster', 'up.sh');

/**
 * The repository root: the nearest directory at or above `from` holding test/cluster/up.sh.
 * Searching from the working directory works for tap run from the root or from test/.
 */
export function findRepoRoot(from: string = process.cwd(), exists: (p: string) => boolean = existsSync): string {
  let dir = resolve(from);
  for (;;) {
    if (exists(join(dir, MARKER))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the repository root (a directory with ${MARKER}) above ${from}`);
    dir = parent;
  }
}

export interface PrepareImageOptions {
  readonly repoRoot: string;
  /** The folder under test/cluster/images/, e.g. `echo`. */
  readonly imageDir: string;
  /** The tag build.sh produces, e.g. `tp-local/echo:1`. */
  readonly image: string;
  readonly kubeconfig: string;
  /**
   * `kind` sends the image to kind's node(s) (load-image.sh's TP_CLUSTER=kind); by default the
   * TP_CLUSTER of the environment or of the cluster.env the suites use (see cluster-env.ts).
   */
  readonly cluster?: string;
  readonly runner?: ProcessRunner;
  /** More environment for build.sh (TP_PRODUCT_DIR, TP_PRODUCT_VERSION). */
  readonly env?: Readonly<Record<string, string>>;
}

function clusterOf(options: PrepareImageOptions): string | undefined {
  if (options.cluster !== undefined) return options.cluster;
  try {
    return loadClusterEnv().cluster;
  } catch {
    return undefined;
  }
}

// A cold image build on the 2-core machine can take minutes; a warm one is seconds.
const BUILD_TIMEOUT_MS = 10 * 60_000;
const LOAD_TIMEOUT_MS = 5 * 60_000;

/** Builds the image and loads it onto the node(s); throws with the script's output on failure. */
export async function prepareImage(options: PrepareImageOptions): Promise<void> {
  const runner = options.runner ?? processRunner;
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env, KUBECONFIG: options.kubeconfig };
  if (clusterOf(options) === 'kind') env['TP_CLUSTER'] = 'kind';
  const steps: Array<[string[], number]> = [
    [[join('test', 'cluster', 'images', 'build.sh'), options.imageDir], BUILD_TIMEOUT_MS],
    [[join('test', 'cluster', 'load-image.sh'), options.image], LOAD_TIMEOUT_MS],
  ];
  for (const [args, timeoutMs] of steps) {
    const r = await runner.run('bash', args, { cwd: options.repoRoot, env, timeoutMs });
    if (r.timedOut || r.exitCode !== 0) {
      const how = r.timedOut ? `timed out after ${timeoutMs} ms` : `failed (exit ${String(r.exitCode)})`;
      throw new Error(`${formatCommandLine('bash', args)} ${how}:\n${r.stdout}${r.stderr}`);
    }
  }
}

/** The images of the product the suites install (the manager's, the injector's, the agent's) and the echo app's. */
export type SuiteImage = 'echo' | 'traffic-manager' | 'agent-injector' | 'traffic-agent';
export const SUITE_IMAGES: readonly SuiteImage[] = ['echo', 'traffic-manager', 'agent-injector', 'traffic-agent'];

/**
 * Builds and loads `images` for a suite: the echo app as ECHO_IMAGE, the product's images tagged
 * with the repository's version, as `kubectl telepresence install` names them.
 */
export async function prepareSuiteImages(repoRoot: string, kubeconfig: string, images: readonly SuiteImage[] = SUITE_IMAGES): Promise<void> {
  const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
  for (const image of images) {
    await prepareImage({ repoRoot, imageDir: image, image: image === 'echo' ? ECHO_IMAGE : `tp-local/${image}:${version}`, kubeconfig });
  }
}

/**
 * Builds this source again as release `version`, in a folder of its own (the CLI under
 * `<root>/dist`, the in-cluster bundles under `<root>/cluster/dist`), and puts its three images,
 * tagged `version`, on the cluster's node(s): a newer release to upgrade to. Returns the folder.
 */
export async function buildRelease(repoRoot: string, kubeconfig: string, version: string, runner: ProcessRunner = processRunner): Promise<string> {
  const root = mkdtempSync(join(tmpdir(), `tp-release-${version}-`));
  const built = await runner.run('node', [join(repoRoot, 'esbuild.config.mjs')], {
    cwd: repoRoot,
    env: { ...process.env, TP_BUILD_VERSION: version, TP_BUILD_OUT: root },
    timeoutMs: BUILD_TIMEOUT_MS,
  });
  if (built.exitCode !== 0) throw new Error(`building release ${version} failed:\n${built.stdout}${built.stderr}`);
  // The images' build context: the Dockerfiles beside the new bundles.
  cpSync(join(repoRoot, 'cluster', 'images'), join(root, 'cluster', 'images'), { recursive: true });
  cpSync(join(repoRoot, 'cluster', '.dockerignore'), join(root, 'cluster', '.dockerignore'));
  for (const image of ['traffic-manager', 'agent-injector', 'traffic-agent'] as const) {
    await prepareImage({
      repoRoot,
      imageDir: image,
      image: `tp-local/${image}:${version}`,
      kubeconfig,
      runner,
      env: { TP_PRODUCT_DIR: join(root, 'cluster'), TP_PRODUCT_VERSION: version },
    });
  }
  return root;
}
