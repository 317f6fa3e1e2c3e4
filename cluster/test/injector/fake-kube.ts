import type { InjectorKube, OwnerRef } from '../../src/injector/admit.js';

/** A hand-written fake of the kube port: ConfigMap entries and ReplicaSet owners from maps. */
export function fakeKube(opts: {
  entries?: Record<string, string>;
  owners?: Record<string, OwnerRef | undefined>;
  ownerError?: Error;
}): InjectorKube & { lookups: string[] } {
  const lookups: string[] = [];
  return {
    lookups,
    agentConfigEntry: (ns, name) => opts.entries?.[`${ns}/${name}`],
    replicaSetOwner: async (ns, name) => {
      lookups.push(`${ns}/${name}`);
      if (opts.ownerError !== undefined) throw opts.ownerError;
      return opts.owners?.[`${ns}/${name}`];
    },
  };
}
