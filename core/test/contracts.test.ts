import t from 'tap';
import {
  AGENTS_CONFIGMAP,
  AGENT_CONTAINER_NAME,
  ANNOTATIONS,
  DEFAULT_MANAGER_NAMESPACE,
  DEFAULT_PORTS,
  ENV,
  KEY_PREFIX,
  LABELS,
  RESOURCE_NAMES,
  managerServiceHost,
} from '../src/contracts.js';

// RFC 1123 label: what Kubernetes requires of namespace, Service and container names.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// Qualified-name part of a label/annotation key (after the optional prefix).
const KEY_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

t.test('the names the cluster sees are valid Kubernetes names', (t) => {
  for (const name of [DEFAULT_MANAGER_NAMESPACE, AGENTS_CONFIGMAP, AGENT_CONTAINER_NAME, RESOURCE_NAMES.manager, RESOURCE_NAMES.injector]) {
    t.match(name, DNS_LABEL, name);
    t.ok(name.length <= 63, `${name} is at most 63 characters`);
  }
  // Port names are IANA_SVC_NAMEs: at most 15 characters.
  for (const port of [RESOURCE_NAMES.managerPortName, RESOURCE_NAMES.injectorPortName]) {
    t.ok(port.length <= 15, `${port} fits a port name`);
  }
  t.end();
});

t.test('our label and annotation keys share the prefix and are valid', (t) => {
  const keys = [LABELS.workloadName, LABELS.workloadKind, LABELS.agentInjected, ...Object.values(ANNOTATIONS)];
  for (const key of keys) {
    t.ok(key.startsWith(KEY_PREFIX), `${key} has the prefix`);
    const name = key.slice(KEY_PREFIX.length);
    t.match(name, KEY_NAME, `${key} has a valid name part`);
    t.ok(name.length <= 63, `${key} name part is at most 63 characters`);
  }
  t.end();
});

t.test('default ports are distinct and unprivileged', (t) => {
  t.same(DEFAULT_PORTS, { manager: 8081, agent: 9900, injector: 8443 });
  const ports = Object.values(DEFAULT_PORTS);
  t.equal(new Set(ports).size, ports.length);
  t.end();
});

t.test('env var names are distinct and namespaced', (t) => {
  const names = Object.values(ENV);
  t.equal(new Set(names).size, names.length);
  for (const name of names) {
    t.match(name, /^TP_[A-Z_]+$/, name);
  }
  t.end();
});

t.test('managerServiceHost', (t) => {
  t.equal(managerServiceHost(), 'traffic-manager.tp-system');
  t.equal(managerServiceHost('other'), 'traffic-manager.other');
  t.end();
});
