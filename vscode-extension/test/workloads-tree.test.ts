import t from 'tap';
import { EMPTY_SOURCE, WorkloadsTree, workloadNode, type Workload, type WorkloadSource } from '../src/workloads-tree.js';

/** A WorkloadSource whose contents the test sets. */
class FakeSource implements WorkloadSource {
  constructor(public workloads: Workload[]) {}
  listWorkloads(): Promise<readonly Workload[]> {
    return Promise.resolve(this.workloads);
  }
}

t.test('the empty source gives an empty view', async (t) => {
  t.same(await new WorkloadsTree(EMPTY_SOURCE).getChildren(), []);
});

t.test('workloads are sorted by namespace, then name, and are leaves', async (t) => {
  const tree = new WorkloadsTree(
    new FakeSource([
      { namespace: 'web', name: 'b', kind: 'Deployment', agent: 'none' },
      { namespace: 'api', name: 'z', kind: 'StatefulSet', agent: 'intercepted' },
      { namespace: 'web', name: 'a', kind: 'Deployment', agent: 'installed' },
    ]),
  );
  const nodes = await tree.getChildren();
  t.same(
    nodes.map((n) => n.id),
    ['workload/api/StatefulSet/z', 'workload/web/Deployment/a', 'workload/web/Deployment/b'],
  );
  for (const node of nodes) {
    t.same(await tree.getChildren(node), [], `${node.label} has no children`);
  }
});

const nodeCases: ReadonlyArray<{ agent: Workload['agent']; description: string }> = [
  { agent: 'none', description: 'default' },
  { agent: 'installed', description: 'default · agent installed' },
  { agent: 'intercepted', description: 'default · intercepted' },
];
for (const c of nodeCases) {
  t.test(`node for a workload with agent ${c.agent}`, (t) => {
    t.strictSame(workloadNode({ namespace: 'default', name: 'echo', kind: 'Deployment', agent: c.agent }), {
      id: 'workload/default/Deployment/echo',
      label: 'echo',
      description: c.description,
      contextValue: `workload.${c.agent}`,
      collapsible: false,
    });
    t.end();
  });
}

t.test('refresh notifies listeners until they unsubscribe', (t) => {
  const tree = new WorkloadsTree(EMPTY_SOURCE);
  let calls = 0;
  const unsubscribe = tree.onDidChange(() => calls++);
  tree.refresh();
  t.equal(calls, 1);
  unsubscribe();
  tree.refresh();
  t.equal(calls, 1);
  t.end();
});

t.test('a refresh picks up the source\'s new contents', async (t) => {
  const source = new FakeSource([]);
  const tree = new WorkloadsTree(source);
  t.same(await tree.getChildren(), []);
  source.workloads = [{ namespace: 'default', name: 'echo', kind: 'Deployment', agent: 'none' }];
  tree.refresh();
  t.same((await tree.getChildren()).map((n) => n.label), ['echo']);
});
