import t from 'tap';
import { DEFAULT_KUBECTL_TIMEOUT_MS, KubectlError, createKube } from '../src/kube.js';
import { FakeRunner } from './fixtures/fake-runner.js';

t.test('kubectl runs with the kubeconfig, a default timeout, and returns stdout', async (t) => {
  const runner = new FakeRunner(() => ({ stdout: 'node/a\n' }));
  const kube = createKube('/tmp/kc.yaml', runner);
  t.equal(await kube.kubectl(['get', 'nodes', '-o', 'name']), 'node/a\n');
  t.equal(runner.runs.length, 1);
  const call = runner.runs[0];
  t.equal(call?.command, 'kubectl');
  t.same(call?.args, ['get', 'nodes', '-o', 'name']);
  t.equal(call?.options.env?.['KUBECONFIG'], '/tmp/kc.yaml');
  t.equal(call?.options.timeoutMs, DEFAULT_KUBECTL_TIMEOUT_MS);
  t.equal(call?.options.input, undefined, 'no stdin unless asked');
});

t.test('kubectl passes input and a custom timeout through', async (t) => {
  const runner = new FakeRunner();
  await createKube('/kc', runner).kubectl(['apply', '-f', '-'], { input: '{}', timeoutMs: 5 });
  t.equal(runner.runs[0]?.options.input, '{}');
  t.equal(runner.runs[0]?.options.timeoutMs, 5);
});

const failures = [
  {
    name: 'a non-zero exit',
    result: { exitCode: 1, stderr: 'Error from server (NotFound): pods "x" not found\n' },
    message: /^kubectl get pod x failed \(exit 1\): Error from server \(NotFound\): pods "x" not found$/,
    timedOut: false,
  },
  {
    name: 'a timeout',
    result: { exitCode: null, signal: 'SIGKILL' as const, timedOut: true, stderr: '' },
    message: /^kubectl get pod x timed out: \(no stderr\)$/,
    timedOut: true,
  },
];
for (const c of failures) {
  t.test(`kubectl throws KubectlError with stderr on ${c.name}`, async (t) => {
    const kube = createKube('/kc', new FakeRunner(() => c.result));
    const err = await kube.kubectl(['get', 'pod', 'x']).catch((e: unknown) => e);
    t.type(err, KubectlError);
    const e = err as KubectlError;
    t.match(e.message, c.message);
    t.same(e.args, ['get', 'pod', 'x']);
    t.equal(e.timedOut, c.timedOut);
    t.equal(e.stderr, c.result.stderr);
  });
}

t.test('json appends -o json and parses', async (t) => {
  const runner = new FakeRunner(() => ({ stdout: '{"items":[{"metadata":{"name":"n1"}}]}' }));
  const list = await createKube('/kc', runner).json<{ items: Array<{ metadata: { name: string } }> }>(['get', 'nodes']);
  t.same(runner.runs[0]?.args, ['get', 'nodes', '-o', 'json']);
  t.equal(list.items[0]?.metadata.name, 'n1');
});

t.test('json reports output that is not JSON', async (t) => {
  const kube = createKube('/kc', new FakeRunner(() => ({ stdout: 'No resources found' })));
  await t.rejects(kube.json(['get', 'pods']), { message: /kubectl get pods -o json printed invalid JSON: No resources found/ });
});

t.test('apply sends the objects as one List on stdin', async (t) => {
  const runner = new FakeRunner();
  await createKube('/kc', runner).apply([{ kind: 'Namespace' }, { kind: 'Service' }]);
  t.same(runner.runs[0]?.args, ['apply', '-f', '-']);
  t.same(JSON.parse(runner.runs[0]?.options.input ?? ''), {
    apiVersion: 'v1',
    kind: 'List',
    items: [{ kind: 'Namespace' }, { kind: 'Service' }],
  });
});

t.test('start runs a long-lived kubectl with the kubeconfig', async (t) => {
  const runner = new FakeRunner();
  createKube('/kc', runner).start(['port-forward', 'svc/echo', ':80']);
  t.equal(runner.starts[0]?.command, 'kubectl');
  t.same(runner.starts[0]?.args, ['port-forward', 'svc/echo', ':80']);
  t.equal(runner.starts[0]?.options.env?.['KUBECONFIG'], '/kc');
});

t.test('diagnostics describes each target and lists events, turning failures into text', async (t) => {
  const runner = new FakeRunner((_cmd, args) => {
    if (args[0] === 'describe' && args[1] === 'pods') return { exitCode: 1, stderr: 'boom' };
    if (args[0] === 'describe') return { stdout: `DESCRIBED ${args[1] ?? ''}\n` };
    return { stdout: 'EVENTS\n' };
  });
  const text = await createKube('/kc', runner).diagnostics('ns1', ['deployment/echo', 'pods']);
  t.same(
    runner.runs.map((r) => r.args),
    [
      ['describe', 'deployment/echo', '-n', 'ns1'],
      ['describe', 'pods', '-n', 'ns1'],
      ['get', 'events', '-n', 'ns1', '--sort-by=.metadata.creationTimestamp'],
    ],
  );
  t.match(text, /### kubectl describe deployment\/echo\nDESCRIBED deployment\/echo/);
  t.match(text, /### kubectl describe pods\n\(kubectl describe pods -n ns1 failed \(exit 1\): boom\)/);
  t.match(text, /### events in ns1\nEVENTS/);
});

t.test('diagnostics without a namespace lists no events', async (t) => {
  const runner = new FakeRunner(() => ({ stdout: 'node stuff' }));
  const text = await createKube('/kc', runner).diagnostics(undefined, ['nodes']);
  t.same(
    runner.runs.map((r) => r.args),
    [['describe', 'nodes']],
  );
  t.match(text, /node stuff/);
});
