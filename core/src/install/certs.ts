/**
 * The agent-injector's TLS material: a self-signed CA and a serving certificate for
 * `agent-injector.<ns>.svc`, made on the workstation (the API server trusts the CA through the
 * webhook's caBundle). Keys come from node:crypto, which is much faster than node-forge's
 * JavaScript RSA; node-forge builds and signs the X.509 certificates.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface InjectorTls {
  /** PEM strings. */
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
}

/** Ten years: a workstation-made CA nobody rotates should not expire under a running install. */
export const VALIDITY_YEARS = 10;

function rsaKeyPair(): forge.pki.rsa.KeyPair {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const key = forge.pki.privateKeyFromPem(pem);
  return { privateKey: key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e) };
}

function newCertificate(publicKey: forge.pki.PublicKey, now: Date): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A positive serial: the top bit clear, as RFC 5280 wants.
  cert.serialNumber = `0${randomBytes(16).toString('hex')}`.slice(0, 32);
  cert.validity.notBefore = new Date(now.getTime() - 60_000);
  cert.validity.notAfter = new Date(now.getTime());
  cert.validity.notAfter.setFullYear(now.getFullYear() + VALIDITY_YEARS);
  return cert;
}

/** The DNS names the API server may use for the webhook Service. */
export function injectorDnsNames(service: string, namespace: string): string[] {
  return [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`, `${service}.${namespace}`, service];
}

export function makeInjectorTls(service: string, namespace: string, now: Date = new Date()): InjectorTls {
  const caKeys = rsaKeyPair();
  const ca = newCertificate(caKeys.publicKey, now);
  const caName = [{ name: 'commonName', value: `telepresence-ts agent-injector CA (${namespace})` }];
  ca.setSubject(caName);
  ca.setIssuer(caName);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());

  const keys = rsaKeyPair();
  const cert = newCertificate(keys.publicKey, now);
  const dnsNames = injectorDnsNames(service, namespace);
  cert.setSubject([{ name: 'commonName', value: dnsNames[0] ?? service }]);
  cert.setIssuer(caName);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: dnsNames.map((value) => ({ type: 2, value })) },
  ]);
  cert.sign(caKeys.privateKey, forge.md.sha256.create());

  return {
    caCert: forge.pki.certificateToPem(ca),
    cert: forge.pki.certificateToPem(cert),
    key: forge.pki.privateKeyToPem(keys.privateKey),
  };
}
