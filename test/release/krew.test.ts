/**
 * The krew release of the CLI: `scripts/pack-krew.sh` packs the archive and the manifest and has
 * krew's validator check it; here the manifest's sha256 must be the archive's, everything it
 * names must be in the archive, krew must install it from the archive, and kubectl must then find
 * `kubectl telepresence` in krew's bin folder and run it. Needs a built dist/ and Go (krew is
 * built from the Go module proxy); no cluster.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import t from 'tap';
import { processRunner } from '../src/process-runner.js';

const ROOT = resolve(import.meta.dirname, '../..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

t.setTimeout(10 * 60_000);

t.test('the krew manifest and archive: validated, consistent, and installed by krew', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'tp-krew-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const packed = await processRunner.run('bash', [join(ROOT, 'scripts', 'pack-krew.sh'), '--no-build', join(work, 'release')], { timeoutMs: 300_000 });
  t.equal(packed.exitCode, 0, `pack-krew.sh (which runs krew's validator): ${packed.stderr}`);
  const manifestPath = packed.stdout.trim().split('\n').pop() ?? '';
  t.equal(manifestPath, join(work, 'release', 'telepresence.yaml'), 'named after the plugin, as krew requires');
  const manifest = readFileSync(manifestPath, 'utf8');
  t.match(manifest, new RegExp(`^  version: v${VERSION.replace(/\./g, '\\.')}$`, 'm'), 'the version is the CLI\'s');

  const archiveName = `kubectl-telepresence-v${VERSION}-linux.tar.gz`;
  const archive = join(dirname(manifestPath), archiveName);
  const sha = createHash('sha256').update(readFileSync(archive)).digest('hex');
  const shas = [...manifest.matchAll(/^\s+sha256: (\S+)$/gm)].map((m) => m[1]);
  t.strictSame(shas, [sha, sha], 'both platforms name the archive by its sha256');
  t.strictSame(
    [...manifest.matchAll(/^\s+uri: (\S+)$/gm)].map((m) => m[1]?.endsWith(`/v${VERSION}/${archiveName}`)),
    [true, true],
    'and link to it under the release of this version',
  );
  t.strictSame([...manifest.matchAll(/arch: (\S+)$/gm)].map((m) => m[1]), ['amd64', 'arm64']);

  const listing = (await processRunner.run('tar', ['-tzvf', archive], { timeoutMs: 30_000 })).stdout.split('\n');
  const entry = (path: string): string | undefined => listing.find((l) => l.endsWith(` ./${path}`) || l.endsWith(` ./${path}/`));
  for (const from of [...manifest.matchAll(/^\s+- from: (\S+)$/gm)].map((m) => m[1] ?? '')) {
    t.ok(entry(from), `the archive has ${from}, which the manifest installs`);
  }
  for (const exe of ['bin/kubectl-telepresence', 'bin/tp-netstack', 'bin/tp-netstack-linux-amd64', 'bin/tp-netstack-linux-arm64', 'kubectl-telepresence.js']) {
    t.match(entry(exe), /^-rwx/, `${exe} is in it, executable`);
  }

  const tools = (await processRunner.run('bash', [join(ROOT, 'scripts', 'krew-tools.sh')], { timeoutMs: 300_000 })).stdout.trim();
  const krewRoot = join(work, 'krew');
  const env = { ...process.env, KREW_ROOT: krewRoot, PATH: `${join(krewRoot, 'bin')}:${(process.env['PATH'] ?? '').split(':').filter((d) => d !== join(ROOT, 'dist', 'bin')).join(':')}` };
  const installed = await processRunner.run(join(tools, 'krew'), ['install', `--manifest=${manifestPath}`, `--archive=${archive}`], { env, timeoutMs: 120_000 });
  t.equal(installed.exitCode, 0, `krew install: ${installed.stderr}`);
  const plugins = await processRunner.run('kubectl', ['plugin', 'list'], { env, timeoutMs: 30_000 });
  t.match(plugins.stdout, `${join(krewRoot, 'bin', 'kubectl-telepresence')}\n`, "kubectl's plugin discovery finds the one krew installed");
  const version = await processRunner.run('kubectl', ['telepresence', 'version'], { env, timeoutMs: 60_000 });
  t.match(version.stdout, `Client: v${VERSION}`, '`kubectl telepresence version` runs from krew\'s store');

  // The validator is krew's, not a formality: a manifest whose name is not its file's is refused.
  const renamed = join(work, 'release', 'other.yaml');
  await processRunner.run('cp', [manifestPath, renamed]);
  const refused = await processRunner.run(join(tools, 'validate-krew-manifest'), ['-manifest', renamed, '-skip-install'], { timeoutMs: 60_000 });
  t.not(refused.exitCode, 0, 'krew\'s validator refuses a manifest named unlike its file');
});
