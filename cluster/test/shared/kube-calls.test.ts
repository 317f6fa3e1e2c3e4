import { ApiException, type AppsV1Api, type CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import { TpError } from '@telepresence-ts/core/errors';
import t from 'tap';
import { CONFLICT_RETRIES, kubeErrorFor, readWorkload, updateAgentsMap } from '../../src/shared/kube-calls.js';

const status = (code: number, message: string) => new ApiException(code, `HTTP-Code: ${code}`, JSON.stringify({ kind: 'Status', message, code }), {});

/**
 * The ConfigMap calls of CoreV1Api, over one stored map with a resourceVersion; a write with a
 * stale resourceVersion gets 409, as from the API server. `before` runs before each write (to
 * slip in someone else's write, or fail).
 */
function fakeCore(initial?: Record<string, string>) {
  let stored: V1ConfigMap | undefined =
    initial === undefined ? undefined : { metadata: { name: 'telepresence-agents', namespace: 'apps', resourceVersion: '1' }, data: { ...initial } };
  let rv = 1;
  const log: string[] = [];
  const state = { before: (): void => undefined };
  const put = (data: Record<string, string> | undefined, labels?: Record<string, string>): V1ConfigMap => {
    rv++;
    stored = { metadata: { name: 'telepresence-agents', namespace: 'apps', resourceVersion: String(rv), ...(labels === undefined ? {} : { labels }) }, data: { ...(data ?? {}) } };
    return structuredClone(stored);
  };
  const core = {
    readNamespacedConfigMap: async () => {
      log.push('read');
      if (stored === undefined) throw status(404, 'configmaps "telepresence-agents" not found');
      return structuredClone(stored);
    },
    createNamespacedConfigMap: async ({ body }: { body: V1ConfigMap }) => {
      log.push('create');
      state.before();
      if (stored !== undefined) throw status(409, 'configmaps "telepresence-agents" already exists');
      return put(body.data, body.metadata?.labels);
    },
    replaceNamespacedConfigMap: async ({ body }: { body: V1ConfigMap }) => {
      log.push('replace');
      state.before();
      if (stored?.metadata?.resourceVersion !== body.metadata?.resourceVersion) throw status(409, 'the object has been modified');
      return put(body.data, stored?.metadata?.labels);
    },
  };
  return {
    core: core as unknown as CoreV1Api,
    log,
    state,
    stored: () => stored,
    /** Someone else's write. */
    writeOther: (data: Record<string, string>) => put({ ...(stored?.data ?? {}), ...data }),
  };
}

const fail = kubeErrorFor('agent-injector');
const add = (name: string, value: string) => (data: Record<string, string>) => {
  if (name in data) return false;
  data[name] = value;
  return true;
};

t.test('a missing map is created with the entry, labelled as ours', async (t) => {
  const f = fakeCore();
  const result = await updateAgentsMap(f.core, fail, 'apps', add('web', 'cfg'));
  t.strictSame(result, { changed: true, data: { web: 'cfg' } });
  t.strictSame(f.log, ['read', 'create']);
  t.strictSame(f.stored()?.data, { web: 'cfg' });
  t.equal(f.stored()?.metadata?.labels?.['app.kubernetes.io/managed-by'], 'telepresence-ts');
});

t.test('an existing map keeps the entries of others', async (t) => {
  const f = fakeCore({ shop: 's' });
  t.strictSame(await updateAgentsMap(f.core, fail, 'apps', add('web', 'cfg')), { changed: true, data: { shop: 's', web: 'cfg' } });
  t.strictSame(f.stored()?.data, { shop: 's', web: 'cfg' });
});

t.test('a change that declines writes nothing and answers the map as read', async (t) => {
  const f = fakeCore({ web: 'theirs' });
  t.strictSame(await updateAgentsMap(f.core, fail, 'apps', add('web', 'mine')), { changed: false, data: { web: 'theirs' } });
  t.strictSame(f.log, ['read']);
});

t.test('a conflict reads again and decides again', async (t) => {
  t.test('someone replaced the map in between', async (t) => {
    const f = fakeCore({});
    let once = true;
    f.state.before = () => {
      if (once) f.writeOther({ web: 'theirs' });
      once = false;
    };
    t.strictSame(await updateAgentsMap(f.core, fail, 'apps', add('web', 'mine')), { changed: false, data: { web: 'theirs' } }, 'their entry is kept');
    t.strictSame(f.log, ['read', 'replace', 'read']);
  });
  t.test('someone created the map in between', async (t) => {
    const f = fakeCore();
    let once = true;
    f.state.before = () => {
      if (once) f.writeOther({ shop: 's' });
      once = false;
    };
    t.strictSame(await updateAgentsMap(f.core, fail, 'apps', add('web', 'mine')), { changed: true, data: { shop: 's', web: 'mine' } });
    t.strictSame(f.log, ['read', 'create', 'read', 'replace']);
  });
  t.test('conflicts without end give up', async (t) => {
    const f = fakeCore({});
    f.state.before = () => void f.writeOther({});
    await t.rejects(updateAgentsMap(f.core, fail, 'apps', add('web', 'mine')), { category: 'cluster', code: 'kube-api', message: /^could not write apps\/telepresence-agents: the object has been modified$/ });
    t.equal(f.log.filter((l) => l === 'replace').length, CONFLICT_RETRIES + 1);
  });
});

t.test('a refused write names the program and its RBAC', async (t) => {
  const f = fakeCore({});
  f.state.before = () => {
    throw status(403, 'configmaps "telepresence-agents" is forbidden: User "system:serviceaccount:tp-system:agent-injector" cannot update');
  };
  await t.rejects(updateAgentsMap(f.core, fail, 'apps', add('web', 'mine')), {
    category: 'config',
    code: 'forbidden',
    message: /^the agent-injector may not write apps\/telepresence-agents: configmaps "telepresence-agents" is forbidden/,
    hint: "check the agent-injector's RBAC (re-run `kubectl telepresence install`)",
  });
});

t.test('kubeErrorFor passes a TpError through', (t) => {
  const own = new TpError('user', 'x', 'y');
  t.equal(kubeErrorFor('traffic-manager')(own, 'z'), own);
  t.end();
});

t.test('readWorkload reads the kind asked for; a 404 is no workload', async (t) => {
  const asked: string[] = [];
  const apps = {
    readNamespacedDeployment: async ({ name }: { name: string }) => {
      asked.push(`deployment ${name}`);
      if (name !== 'web') throw status(404, 'not found');
      return { metadata: { name } };
    },
    readNamespacedStatefulSet: async () => {
      throw status(403, 'statefulsets.apps is forbidden');
    },
  } as unknown as AppsV1Api;
  t.match(await readWorkload(apps, fail, 'apps', 'web', 'Deployment'), { kind: 'Deployment', name: 'web', namespace: 'apps', object: { metadata: { name: 'web' } } });
  t.equal(await readWorkload(apps, fail, 'apps', 'gone', 'Deployment'), undefined);
  await t.rejects(readWorkload(apps, fail, 'apps', 'db', 'StatefulSet'), { code: 'forbidden', message: /may not read statefulset\/db in apps/ });
  t.strictSame(asked, ['deployment web', 'deployment gone']);
});
