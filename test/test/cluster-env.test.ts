import t from 'tap';
import { ClusterNotUpError, DEFAULT_STATE_DIR, parseEnvFile, resolveClusterEnv } from '../src/cluster-env.js';

t.test('parseEnvFile', async (t) => {
  const values = parseEnvFile(
    ['# written by up.sh', '', 'KUBECONFIG=/var/lib/tp-cluster/kubeconfig', 'TP_CLUSTER="local"', "export TP_HOST_ADDRESS='127.0.0.1'", 'not a line', 'TP_NODE_NAME=tp-node'].join('\n'),
  );
  t.same(Object.fromEntries(values), {
    KUBECONFIG: '/var/lib/tp-cluster/kubeconfig',
    TP_CLUSTER: 'local',
    TP_HOST_ADDRESS: '127.0.0.1',
    TP_NODE_NAME: 'tp-node',
  });
});

const FILE = `KUBECONFIG=/state/kubeconfig\nTP_CLUSTER=kind\nTP_HOST_ADDRESS=172.18.0.1\nTP_NODE_NAME=kind-control-plane\n`;

interface Case {
  readonly name: string;
  readonly env: Record<string, string>;
  readonly files: Record<string, string>;
  readonly want?: Record<string, string | undefined>;
  readonly error?: RegExp;
}

const cases: Case[] = [
  {
    name: 'everything from cluster.env in the default state dir',
    env: {},
    files: { [`${DEFAULT_STATE_DIR}/cluster.env`]: FILE, '/state/kubeconfig': 'x' },
    want: {
      kubeconfig: '/state/kubeconfig',
      cluster: 'kind',
      hostAddress: '172.18.0.1',
      nodeName: 'kind-control-plane',
      source: `${DEFAULT_STATE_DIR}/cluster.env`,
    },
  },
  {
    name: 'TP_STATE moves cluster.env',
    env: { TP_STATE: '/elsewhere' },
    files: { '/elsewhere/cluster.env': FILE, '/state/kubeconfig': 'x' },
    want: { kubeconfig: '/state/kubeconfig', source: '/elsewhere/cluster.env' },
  },
  {
    name: 'the environment wins over the file',
    env: { KUBECONFIG: '/mine', TP_HOST_ADDRESS: '10.1.2.3' },
    files: { [`${DEFAULT_STATE_DIR}/cluster.env`]: FILE, '/mine': 'x' },
    want: { kubeconfig: '/mine', hostAddress: '10.1.2.3', cluster: 'kind', source: 'environment' },
  },
  {
    name: 'KUBECONFIG alone is enough (no host address known)',
    env: { KUBECONFIG: '/mine' },
    files: { '/mine': 'x' },
    want: { kubeconfig: '/mine', hostAddress: undefined, cluster: undefined, source: 'environment' },
  },
  {
    name: 'a KUBECONFIG list is passed on unchecked',
    env: { KUBECONFIG: '/a:/b' },
    files: {},
    want: { kubeconfig: '/a:/b' },
  },
  {
    name: 'an empty KUBECONFIG counts as unset',
    env: { KUBECONFIG: '  ' },
    files: { [`${DEFAULT_STATE_DIR}/cluster.env`]: FILE, '/state/kubeconfig': 'x' },
    want: { kubeconfig: '/state/kubeconfig' },
  },
  {
    name: 'neither: says to run cluster:up',
    env: {},
    files: {},
    error: /KUBECONFIG is not set and \/var\/lib\/tp-cluster\/cluster.env does not exist\.\nNo test cluster is configured: run `npm run cluster:up`/,
  },
  {
    name: 'cluster.env without KUBECONFIG',
    env: {},
    files: { [`${DEFAULT_STATE_DIR}/cluster.env`]: 'TP_CLUSTER=local\n' },
    error: /has no KUBECONFIG line\.\n.*npm run cluster:up/,
  },
  {
    name: 'cluster.env points at a kubeconfig that is gone',
    env: {},
    files: { [`${DEFAULT_STATE_DIR}/cluster.env`]: FILE },
    error: /KUBECONFIG=\/state\/kubeconfig \(from \/var\/lib\/tp-cluster\/cluster.env\) does not exist\.\n.*npm run cluster:up/,
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const read = (p: string): string | undefined => c.files[p];
    const exists = (p: string): boolean => p in c.files;
    if (c.error) {
      t.throws(() => resolveClusterEnv(c.env, read, exists), ClusterNotUpError);
      t.throws(() => resolveClusterEnv(c.env, read, exists), { message: c.error });
      return;
    }
    const got = resolveClusterEnv(c.env, read, exists) as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(c.want ?? {})) t.equal(got[k], v, k);
  });
}
