import type { V1Service } from '@kubernetes/client-node';
import type { InjectorKube, NamespaceMeta, OwnerRef } from '../../src/injector/admit.js';
import type { KubeWorkload } from '../../src/shared/kube-calls.js';

/**
 * A hand-written fake of the kube port: ConfigMap entries, ReplicaSet owners, namespaces,
 * workloads and Services from maps. `addAgentConfigEntry` keeps the adapter's promise: it adds
 * to `entries` unless the key is there, so `agentConfigEntry` answers it at once.
 */
export function fakeKube(opts: {
  entries?: Record<string, string>;
  owners?: Record<string, OwnerRef | undefined>;
  ownerError?: Error;
  /** By namespace; a namespace not listed has neither annotations nor labels. */
  namespaces?: Record<string, Partial<NamespaceMeta>>;
  namespaceError?: Error;
  /** By `namespace/name`. */
  workloads?: Record<string, KubeWorkload>;
  /** By namespace. */
  services?: Record<string, V1Service[]>;
  writeError?: Error;
}): InjectorKube & { lookups: string[]; calls: string[]; writes: string[] } {
  const lookups: string[] = [];
  const calls: string[] = [];
  const writes: string[] = [];
  const entries = opts.entries ?? {};
  return {
    lookups,
    calls,
    writes,
    agentConfigEntry: (ns, name) => entries[`${ns}/${name}`],
    replicaSetOwner: async (ns, name) => {
      lookups.push(`${ns}/${name}`);
      if (opts.ownerError !== undefined) throw opts.ownerError;
      return opts.owners?.[`${ns}/${name}`];
    },
    namespaceMeta: async (ns) => {
      calls.push(`namespace ${ns}`);
      if (opts.namespaceError !== undefined) throw opts.namespaceError;
      const meta = opts.namespaces?.[ns];
      return { annotations: meta?.annotations ?? {}, labels: meta?.labels ?? {} };
    },
    readWorkload: async (ns, name, kind) => {
      calls.push(`read ${kind}/${name}`);
      const w = opts.workloads?.[`${ns}/${name}`];
      return w?.kind === kind ? w : undefined;
    },
    listServices: async (ns) => {
      calls.push(`services ${ns}`);
      return opts.services?.[ns] ?? [];
    },
    addAgentConfigEntry: async (ns, name, value) => {
      calls.push(`add ${ns}/${name}`);
      if (opts.writeError !== undefined) throw opts.writeError;
      const key = `${ns}/${name}`;
      const existing = entries[key];
      if (existing !== undefined) return { entry: existing, written: false };
      entries[key] = value;
      writes.push(key);
      return { entry: value, written: true };
    },
  };
}
