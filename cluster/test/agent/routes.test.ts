import { InterceptDisposition } from '@telepresence-ts/proto/manager/v1';
import t from 'tap';
import { chooseIntercept, forwardRoutes, type ForwardRoute } from '../../src/agent/routes.js';
import type { AgentConfig, AgentIntercept } from '../../src/shared/agent-config.js';
import { intercept } from './helpers.js';

function ic(servicePortName: string, servicePort: number, containerPort: number, agentPort: number): AgentIntercept {
  return { serviceName: 'echo', serviceUid: 'u', servicePortName, servicePort, protocol: 'TCP', targetPortNumeric: true, containerPortName: '', containerPort, agentPort };
}

t.test('one route per intercept entry, across containers', (t) => {
  const config = {
    containers: [
      { name: 'a', mountPoint: '', intercepts: [ic('http', 80, 8080, 9901), ic('', 9090, 9090, 9902)] },
      { name: 'b', mountPoint: '', intercepts: [ic('grpc', 50051, 5000, 9903)] },
    ],
  } as unknown as AgentConfig;
  t.strictSame(forwardRoutes(config), [
    { containerName: 'a', containerPort: 8080, agentPort: 9901, label: 'echo:http' },
    { containerName: 'a', containerPort: 9090, agentPort: 9902, label: 'echo:9090' },
    { containerName: 'b', containerPort: 5000, agentPort: 9903, label: 'echo:grpc' },
  ]);
  t.end();
});

t.test('which intercept takes a route', (t) => {
  const route: ForwardRoute = { containerName: 'app', containerPort: 8080, agentPort: 9901, label: 'echo:http' };
  const base = intercept('c1:echo', 9901);
  const cases = [
    { name: 'none', intercepts: [], want: undefined },
    { name: 'active on this port', intercepts: [base], want: 'c1:echo' },
    { name: 'waiting counts', intercepts: [{ ...base, disposition: InterceptDisposition.WAITING }], want: 'c1:echo' },
    { name: 'agent error does not', intercepts: [{ ...base, disposition: InterceptDisposition.AGENT_ERROR }], want: undefined },
    { name: 'unspecified does not', intercepts: [{ ...base, disposition: InterceptDisposition.INTERCEPT_DISPOSITION_UNSPECIFIED }], want: undefined },
    { name: 'another port', intercepts: [intercept('c1:other', 9902)], want: undefined },
    { name: 'another container', intercepts: [{ ...base, target: { ...base.target!, containerName: 'sidecar' } }], want: undefined },
    { name: 'no container named', intercepts: [{ ...base, target: { ...base.target!, containerName: '' } }], want: 'c1:echo' },
    { name: 'no target', intercepts: [{ ...base, target: undefined }], want: undefined },
    { name: 'personal (headers): not here yet', intercepts: [{ ...base, spec: { ...base.spec!, headers: [{ name: 'x', value: 'y' }] } }], want: undefined },
    { name: 'the oldest of several', intercepts: [{ ...intercept('c2:echo', 9901), createdAt: 2 }, { ...intercept('c3:echo', 9901), createdAt: 1 }], want: 'c3:echo' },
    { name: 'equal ages: the smaller id', intercepts: [intercept('c2:echo', 9901), intercept('c1:echo', 9901)], want: 'c1:echo' },
  ];
  for (const c of cases) t.equal(chooseIntercept(c.intercepts, route)?.id, c.want, c.name);
  t.end();
});
