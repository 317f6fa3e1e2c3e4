/**
 * The release workflow (.github/workflows/release.yml): actionlint finds nothing in it, and it
 * does what a release needs. It runs on `v*` tags; nothing is pushed or published before the unit
 * and the cluster suites passed; it calls the scripts that push and pack; the CLI is built with
 * the registry the images go to; no job may do more than its part. Its tag check is run here as
 * the runner would run it. Needs Go the first time (actionlint is built from the Go module proxy,
 * about 15 seconds); no cluster, no Docker.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { processRunner } from '../src/process-runner.js';

const ROOT = resolve(import.meta.dirname, '../..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const WORKFLOW = join(ROOT, '.github', 'workflows', 'release.yml');

interface Step {
  readonly id?: string;
  readonly if?: string;
  readonly uses?: string;
  readonly run?: string;
  readonly env?: Record<string, string>;
}
interface Job {
  readonly needs?: string | readonly string[];
  readonly if?: string;
  readonly permissions?: string | Record<string, string>;
  readonly env?: Record<string, string>;
  readonly steps?: readonly Step[];
}
interface Workflow {
  readonly on: { readonly push?: { readonly tags?: readonly string[] }; readonly workflow_dispatch?: unknown };
  readonly permissions?: string | Record<string, string>;
  readonly jobs: Record<string, Job>;
}

interface Finding {
  readonly filepath: string;
  readonly line: number;
  readonly kind: string;
  readonly message: string;
}

/** actionlint's findings, from its JSON output, and its exit code. */
async function actionlint(args: readonly string[]): Promise<{ exitCode: number | null; findings: Finding[]; stderr: string }> {
  // The first run builds actionlint; later runs take a fraction of a second.
  const run = await processRunner.run('bash', [join(ROOT, 'scripts', 'actionlint.sh'), '-format', '{{json .}}', ...args], { timeoutMs: 300_000 });
  const findings = run.stdout.trim() === '' ? [] : (JSON.parse(run.stdout) as Finding[]);
  return { exitCode: run.exitCode, findings, stderr: run.stderr };
}

const workflow = parse(readFileSync(WORKFLOW, 'utf8')) as Workflow;
const jobs = Object.entries(workflow.jobs);
const runs = (job: Job): string => (job.steps ?? []).map((s) => s.run ?? '').join('\n');
/** The one job whose scripts match `pattern`. */
function jobRunning(pattern: RegExp): [string, Job] {
  const found = jobs.filter(([, job]) => pattern.test(runs(job)));
  if (found.length !== 1 || found[0] === undefined) {
    throw new Error(`expected one job running ${pattern}, found ${found.length}`);
  }
  return found[0];
}
const needs = (job: Job): readonly string[] => (typeof job.needs === 'string' ? [job.needs] : (job.needs ?? []));
/** Every job that `name` waits for, directly or through another. */
function upstream(name: string, seen = new Set<string>()): Set<string> {
  for (const before of needs(workflow.jobs[name] ?? {})) {
    if (!seen.has(before)) {
      seen.add(before);
      upstream(before, seen);
    }
  }
  return seen;
}

t.setTimeout(10 * 60_000);

t.test('actionlint finds nothing in the workflows', async (t) => {
  const { exitCode, findings, stderr } = await actionlint([]);
  t.strictSame(findings.map((f) => `${f.filepath}:${f.line}: ${f.message} [${f.kind}]`), [], 'no findings');
  t.equal(exitCode, 0, `actionlint.sh exits 0${stderr === '' ? '' : `: ${stderr}`}`);
});

t.test('actionlint does check: a job that needs a job the workflow lacks is reported', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'tp-actionlint-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const broken = join(work, 'broken.yml');
  writeFileSync(
    broken,
    ['on: push', 'jobs:', '  publish:', '    needs: [tests]', '    runs-on: ubuntu-latest', '    steps:', '      - run: echo published', ''].join('\n'),
  );
  const { exitCode, findings } = await actionlint([broken]);
  t.equal(exitCode, 1, 'actionlint fails');
  // actionlint names the file relative to the working folder when it can, so by its end only.
  t.match(findings, [{ filepath: /(^|\/)broken\.yml$/, line: 3, kind: 'job-needs', message: /"tests" which does not exist/ }]);
});

t.test('it runs on v* tags and by hand', async (t) => {
  t.strictSame(workflow.on.push?.tags, ['v*']);
  t.ok('workflow_dispatch' in workflow.on, 'workflow_dispatch');
});

t.test('the test jobs run the unit tests, lint, typecheck and the cluster suites', async (t) => {
  const [, unit] = jobRunning(/npm run test:unit/);
  for (const command of ['npm ci', 'npm run lint', 'npm run typecheck', 'npm run test:unit']) {
    t.match(runs(unit), new RegExp(`^${command}$`, 'm'), command);
  }
  const [, cluster] = jobRunning(/bash \.ci\/run/);
  t.match(runs(cluster), /^sudo -E .*bash \.ci\/run$/m, 'the cluster suites as root, with the runner\'s environment');
});

t.test('the jobs call the scripts that push and pack', async (t) => {
  const [, images] = jobRunning(/scripts\/push-images\.sh/);
  t.match(runs(images), /^bash scripts\/push-images\.sh --registry "\$REGISTRY"/m);
  t.match(images.env?.['REGISTRY'], /^\$\{\{ needs\.\w+\.outputs\.registry \}\}$/, 'REGISTRY is the one the version job works out');
  const [, pack] = jobRunning(/scripts\/pack-npm\.sh/);
  for (const script of [/^bash scripts\/pack-npm\.sh\b/m, /^bash scripts\/pack-krew\.sh\b/m, /^bash scripts\/package-vsix\.sh dist\/release\/telepresence-ts\.vsix$/m]) {
    t.match(runs(pack), script);
  }
  t.equal(pack.env?.['TP_IMAGE_REGISTRY'], images.env?.['REGISTRY'], 'the CLI is built with the registry the images are pushed to as its default');
  t.ok(
    (pack.steps ?? []).some((s) => s.uses?.startsWith('actions/upload-artifact@') === true),
    'the packages are kept as the run\'s artifacts',
  );
});

t.test('nothing is pushed or published before every test passed, and only on a tag', async (t) => {
  const [unitJob] = jobRunning(/npm run test:unit/);
  const [clusterJob] = jobRunning(/bash \.ci\/run/);
  const publishers = [jobRunning(/scripts\/push-images\.sh/), jobRunning(/gh release create/), jobRunning(/npm publish/)];
  for (const [name, job] of publishers) {
    const before = upstream(name);
    t.ok(before.has(unitJob) && before.has(clusterJob), `${name} waits for ${unitJob} and ${clusterJob}`);
    t.match(job.if, /^needs\.\w+\.outputs\.release == 'true'$/, `${name} runs for a release only`);
  }
});

t.test('npm publish needs NPM_TOKEN and is skipped, saying so, without it', async (t) => {
  const [, npm] = jobRunning(/npm publish/);
  t.equal(npm.env?.['NODE_AUTH_TOKEN'], '${{ secrets.NPM_TOKEN }}');
  const steps = npm.steps ?? [];
  t.ok(steps.every((s) => s.if === "env.NODE_AUTH_TOKEN != ''" || s.if === "env.NODE_AUTH_TOKEN == ''"), 'every step is on one side of the condition');
  t.ok(steps.some((s) => s.if === "env.NODE_AUTH_TOKEN == ''" && /::warning::NPM_TOKEN is not set/.test(s.run ?? '')), 'a warning when the secret is absent');
  t.ok(steps.some((s) => s.if === "env.NODE_AUTH_TOKEN != ''" && /npm publish/.test(s.run ?? '')), 'the publish when it is there');
});

t.test('permissions: read by default, widened only where a job writes', async (t) => {
  t.strictSame(workflow.permissions, { contents: 'read' });
  // What each job may write; every job may read the repository.
  const [imagesJob] = jobRunning(/scripts\/push-images\.sh/);
  const [releaseJob] = jobRunning(/gh release create/);
  const writes: Record<string, readonly string[]> = { [imagesJob]: ['packages'], [releaseJob]: ['contents'] };
  for (const [name, job] of jobs) {
    if (job.permissions === undefined) continue;
    t.type(job.permissions, 'object', `${name}: scopes by name, no read-all or write-all`);
    if (typeof job.permissions !== 'object') continue;
    for (const [scope, level] of Object.entries(job.permissions)) {
      const allowed = (writes[name] ?? []).includes(scope) ? ['read', 'write', 'none'] : scope === 'contents' ? ['read', 'none'] : ['none'];
      t.ok(allowed.includes(level), `${name}: ${scope}: ${level}`);
    }
  }
  const scopes = (name: string): unknown => workflow.jobs[name]?.permissions;
  t.match(scopes(imagesJob), { packages: 'write' }, `${imagesJob} may push packages`);
  t.match(scopes(releaseJob), { contents: 'write' }, `${releaseJob} may make the release`);
});

t.test('third-party actions are pinned to a major version', async (t) => {
  const uses = jobs.flatMap(([, job]) => (job.steps ?? []).flatMap((s) => (s.uses === undefined ? [] : [s.uses])));
  t.ok(uses.length > 0);
  for (const action of new Set(uses)) {
    t.match(action, /^[\w-]+\/[\w-]+@v\d+$/, action);
  }
});

// The tag check, run as the runner runs a step (bash -e) on this checkout.
const versionStep = Object.values(workflow.jobs)
  .flatMap((job) => job.steps ?? [])
  .find((s) => s.run?.includes('GITHUB_REF_NAME') === true && s.run.includes('GITHUB_OUTPUT'));
const tagCases = [
  { ref: `v${VERSION}`, type: 'tag', exitCode: 0, output: { version: VERSION, registry: 'ghcr.io/telepresence-ts', release: 'true' } },
  { ref: 'v999.0.0', type: 'tag', exitCode: 1, stdout: new RegExp(`^::error::the tag v999\\.0\\.0 does not match package\\.json's version ${VERSION.replace(/\./g, '\\.')}`, 'm') },
  { ref: 'main', type: 'branch', exitCode: 0, output: { version: VERSION, registry: 'ghcr.io/telepresence-ts', release: 'false' } },
];
for (const c of tagCases) {
  t.test(`the tag check on ${c.type} ${c.ref}`, async (t) => {
    t.ok(versionStep?.run, 'the workflow has a step that compares the tag with package.json');
    const work = mkdtempSync(join(tmpdir(), 'tp-tag-check-'));
    t.teardown(() => rmSync(work, { recursive: true, force: true }));
    const output = join(work, 'output');
    writeFileSync(output, '');
    const env = { ...process.env, GITHUB_REF_NAME: c.ref, GITHUB_REF_TYPE: c.type, GITHUB_REPOSITORY_OWNER: 'Telepresence-TS', GITHUB_OUTPUT: output };
    const run = await processRunner.run('bash', ['-e', '-c', versionStep?.run ?? 'exit 2'], { cwd: ROOT, env, timeoutMs: 30_000 });
    t.equal(run.exitCode, c.exitCode, run.stderr);
    if (c.stdout) t.match(run.stdout, c.stdout);
    if (c.output) {
      const lines = readFileSync(output, 'utf8').trim().split('\n');
      const written = Object.fromEntries(lines.map((l): [string, string] => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
      t.strictSame(written, c.output, 'the outputs the other jobs read; the registry in lower case');
    }
  });
}
