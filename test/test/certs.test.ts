import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateServingCert, subjectAltName } from '../src/certs.js';
import { FakeRunner } from './fixtures/fake-runner.js';

const sans: Array<[string[], string]> = [
  [['127.0.0.1'], 'IP:127.0.0.1'],
  [['172.18.0.1', 'localhost'], 'IP:172.18.0.1,DNS:localhost'],
  [['::1'], 'IP:::1'],
];
for (const [hosts, want] of sans) {
  t.test(`subjectAltName ${hosts.join(' ')}`, async (t) => {
    t.equal(subjectAltName(hosts), want);
  });
}

t.test('subjectAltName refuses no hosts', async (t) => {
  t.throws(() => subjectAltName([]), /at least one host/);
});

t.test('generateServingCert makes a CA and a serving cert for the IP, signed by it (real openssl)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tp-certs-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pem = await generateServingCert({ dir, hosts: ['127.0.0.1', 'localhost'] });
  const ca = new X509Certificate(pem.caCertPem);
  const cert = new X509Certificate(pem.certPem);
  t.equal(ca.ca, true, 'the CA is a CA');
  t.equal(cert.ca, false, 'the serving cert is not');
  t.ok(cert.checkIssued(ca), 'issued by the CA');
  t.ok(cert.verify(ca.publicKey), 'signed with the CA key');
  t.equal(cert.subjectAltName, 'IP Address:127.0.0.1, DNS:localhost');
  t.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
  t.ok(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(pem.keyPem)), 'key matches cert');
  t.ok(cert.keyUsage?.includes('1.3.6.1.5.5.7.3.1'), 'extended key usage serverAuth');
});

t.test('generateServingCert reports openssl failures with stderr', async (t) => {
  const runner = new FakeRunner(() => ({ exitCode: 1, stderr: 'req: Unknown option' }));
  await t.rejects(generateServingCert({ dir: '/nonexistent', hosts: ['127.0.0.1'], runner }), {
    message: /^openssl req .* failed \(exit 1\): req: Unknown option$/,
  });
});
