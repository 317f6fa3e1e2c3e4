import t from 'tap';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkInterceptRequest, checkOutputFiles, checkWritableFile } from '../../src/daemon/local-inputs.js';

t.test('checkWritableFile refuses what could not be written, naming the flag and the fix', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'tp-envfile-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const readOnly = join(root, 'ro.env');
  writeFileSync(readOnly, '');
  chmodSync(readOnly, 0o400);
  const cases: { name: string; path: string; message?: RegExp }[] = [
    { name: 'a new file in a writable folder', path: join(root, 'new.env') },
    { name: 'a relative path', path: 'web.env', message: /the path is not absolute/ },
    { name: 'a folder that does not exist', path: join(root, 'nope', 'web.env'), message: /the folder .*nope does not exist/ },
    { name: 'a folder', path: root, message: /it is a folder/ },
    { name: 'a file as the folder', path: join(readOnly, 'x.env'), message: /is not a folder/ },
  ];
  // root reads and writes anything: the read-only case means something only for other users.
  if (process.getuid?.() !== 0) cases.push({ name: 'a read-only file', path: readOnly, message: /the file is read-only/ });
  for (const c of cases) {
    t.test(c.name, async (t) => {
      if (c.message === undefined) t.doesNotThrow(() => checkWritableFile(c.path, '--env-file'));
      else t.throws(() => checkWritableFile(c.path, '--env-file'), { code: 'env-file-unwritable', category: 'user', message: c.message });
    });
  }
});

t.test('checkInterceptRequest refuses a missing workload, a bad port and a name that is not a DNS label', async (t) => {
  const ok: { workloadName: string; localPort: number; name: string; mode?: string } = { workloadName: 'echo', localPort: 8080, name: '' };
  const cases: { name: string; request: typeof ok; code?: string; message?: RegExp }[] = [
    { name: 'an ingest needs no port', request: { ...ok, localPort: 0, mode: 'ingest' } },
    { name: 'an ingest without a workload names the ingest command', request: { ...ok, workloadName: '', mode: 'ingest' }, code: 'bad-usage', message: /no workload given/ },
    { name: 'an unknown mode', request: { ...ok, mode: 'mirror' }, code: 'bad-mode', message: /"mirror" is not an engagement mode/ },
    { name: 'a workload and a port', request: ok },
    { name: 'a DNS label as name', request: { ...ok, name: 'echo-2' } },
    { name: 'the highest port', request: { ...ok, localPort: 65535 } },
    { name: 'no workload', request: { ...ok, workloadName: '' }, code: 'bad-usage', message: /no workload given/ },
    { name: 'port 0', request: { ...ok, localPort: 0 }, code: 'bad-port', message: /local port 0 is not a port number/ },
    { name: 'a port past 65535', request: { ...ok, localPort: 65536 }, code: 'bad-port' },
    { name: 'a fractional port', request: { ...ok, localPort: 80.5 }, code: 'bad-port' },
    ...['a/b', '../../etc/x', 'Upper', '-dash', 'dash-', 'x'.repeat(64), 'dot.ted'].map((name) => ({ name: `name ${name}`, request: { ...ok, name }, code: 'bad-intercept-name', message: /is not a DNS label/ })),
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      if (c.code === undefined) t.doesNotThrow(() => checkInterceptRequest(c.request));
      else t.throws(() => checkInterceptRequest(c.request), { code: c.code, category: 'user', ...(c.message !== undefined ? { message: c.message } : {}) });
    });
  }
});

t.test('checkOutputFiles checks --env-file and --env-json, and nothing when neither is asked', async (t) => {
  t.doesNotThrow(() => checkOutputFiles({}));
  t.doesNotThrow(() => checkOutputFiles({ envFile: '', envJson: '' }));
  t.throws(() => checkOutputFiles({ envFile: '/nonexistent-folder/web.env' }), { code: 'env-file-unwritable', message: /--env-file/ });
  t.throws(() => checkOutputFiles({ envJson: 'web.json' }), { code: 'env-file-unwritable', message: /cannot write --env-json web\.json: the path is not absolute/ });
});

t.test("checkInterceptRequest of a replace: no local port of its own; each pair of its port map checked", async (t) => {
  const replace = (ports: Array<{ containerPort: number; localPort: number }>) => ({ workloadName: 'web', localPort: 0, name: '', mode: 'replace', ports });
  t.doesNotThrow(() => checkInterceptRequest(replace([])), 'no ports: each keeps its number');
  t.doesNotThrow(() => checkInterceptRequest(replace([{ containerPort: 8080, localPort: 18080 }, { containerPort: 9090, localPort: 9090 }])));
  const cases: Array<[string, Array<{ containerPort: number; localPort: number }>, RegExp]> = [
    ['a local port out of range', [{ containerPort: 8080, localPort: 0 }], /^0:8080 is not a pair of port numbers/],
    ['a container port out of range', [{ containerPort: 65536, localPort: 8080 }], /^8080:65536 is not a pair/],
    ['a container port twice', [{ containerPort: 8080, localPort: 1 }, { containerPort: 8080, localPort: 2 }], /^container port 8080 is mapped twice$/],
    ['two container ports to one local port', [{ containerPort: 8080, localPort: 1 }, { containerPort: 9090, localPort: 1 }], /^container ports 8080 and 9090 both go to local port 1$/],
  ];
  for (const [name, ports, message] of cases) {
    t.test(name, async (t) => t.throws(() => checkInterceptRequest(replace(ports)), { code: 'bad-port', category: 'user', message, hint: /--port <local port>:<container port>/ }));
  }
  t.throws(() => checkInterceptRequest({ ...replace([]), workloadName: '' }), { code: 'bad-usage', hint: 'kubectl telepresence replace <workload>' });
});
