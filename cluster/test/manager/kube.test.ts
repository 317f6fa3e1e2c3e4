import { ApiException } from '@kubernetes/client-node';
import { TpError } from '@telepresence-ts/core/errors';
import t from 'tap';
import { kubeError } from '../../src/manager/kube.js';

t.test('client-node failures become TpErrors by HTTP status', (t) => {
  const cases: ReadonlyArray<{ err: unknown; category: string; code: string; message: RegExp }> = [
    {
      // What client-node 1.x throws: the Status as a JSON string body.
      err: new ApiException(403, 'HTTP-Code: 403\nMessage: Unknown API Status Code!\nBody: ...', JSON.stringify({ kind: 'Status', message: 'configmaps is forbidden: User "x" cannot create' }), {}),
      category: 'config',
      code: 'forbidden',
      message: /^the traffic-manager may not write ns\/telepresence-agents: configmaps is forbidden: User "x" cannot create$/,
    },
    { err: new ApiException(500, 'etcd timeout', 'not json', {}), category: 'cluster', code: 'kube-api', message: /^could not write ns\/telepresence-agents: etcd timeout$/ },
    { err: new Error('connect ECONNREFUSED 10.0.0.1:443'), category: 'cluster', code: 'kube-api', message: /ECONNREFUSED/ },
  ];
  for (const c of cases) {
    const e = kubeError(c.err, 'write ns/telepresence-agents');
    t.match(e, { category: c.category, code: c.code, message: c.message }, c.code);
    t.notMatch(e.message, /\n/, 'one line');
  }
  t.match(kubeError(new ApiException(403, 'x', {}, {}), 'y').hint, /RBAC/);
  const own = new TpError('user', 'x', 'y');
  t.equal(kubeError(own, 'z'), own, 'a TpError passes through');
  t.end();
});
