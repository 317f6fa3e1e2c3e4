import { X509Certificate, createPrivateKey } from 'node:crypto';
import t from 'tap';
import { injectorDnsNames, makeInjectorTls } from '../../src/install/certs.js';

t.test('a CA and a serving certificate for the injector Service, signed by it', (t) => {
  const tls = makeInjectorTls('agent-injector', 'tp-system', new Date('2026-01-01T00:00:00Z'));
  const ca = new X509Certificate(tls.caCert);
  const cert = new X509Certificate(tls.cert);
  t.ok(ca.ca, 'the CA is a CA');
  t.notOk(cert.ca, 'the serving certificate is not');
  t.ok(cert.verify(ca.publicKey), 'signed by the CA');
  t.ok(cert.checkIssued(ca));
  t.equal(cert.checkHost('agent-injector.tp-system.svc'), 'agent-injector.tp-system.svc', 'valid for the name the API server dials');
  t.ok(cert.checkPrivateKey(createPrivateKey(tls.key)), 'the key matches');
  t.ok(new Date(cert.validTo) > new Date('2035-01-01'), 'long-lived');
  t.end();
});

t.test('DNS names cover every way the Service is addressed', (t) => {
  t.strictSame(injectorDnsNames('agent-injector', 'ns1'), ['agent-injector.ns1.svc', 'agent-injector.ns1.svc.cluster.local', 'agent-injector.ns1', 'agent-injector']);
  t.end();
});
