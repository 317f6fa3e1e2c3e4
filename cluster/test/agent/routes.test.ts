import { InterceptDisposition } from '@telepresence-ts/proto/manager/v1';
import t from 'tap';
import {
  chooseIntercept,
  forwardRoutes,
  matchRequest,
  pairsFromObject,
  pairsFromRaw,
  personalIntercepts,
  wiretapsOn,
  type ForwardRoute,
  type PersonalIntercept,
} from '../../src/agent/routes.js';
import type { AgentConfig, AgentIntercept } from '@telepresence-ts/core/agent-config';
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

t.test('Service ports that lead to the same app port share one route', (t) => {
  const config = {
    containers: [{ name: 'a', mountPoint: '', intercepts: [ic('http', 80, 8080, 9901), ic('', 9090, 9090, 9902), ic('alt', 81, 8080, 9901)] }],
  } as unknown as AgentConfig;
  t.strictSame(forwardRoutes(config), [
    { containerName: 'a', containerPort: 8080, agentPort: 9901, label: 'echo:http,echo:alt' },
    { containerName: 'a', containerPort: 9090, agentPort: 9902, label: 'echo:9090' },
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
    { name: 'personal (headers): not a global one', intercepts: [{ ...base, spec: { ...base.spec!, headers: [{ name: 'x', value: 'y' }] } }], want: undefined },
    { name: 'an ingest takes no traffic', intercepts: [{ ...base, spec: { ...base.spec!, mode: 'ingest' } }], want: undefined },
    { name: 'an ingest beside a global intercept', intercepts: [{ ...intercept('c0:echo', 9901), createdAt: 0, spec: { ...base.spec!, mode: 'ingest' } }, { ...base, createdAt: 5 }], want: 'c1:echo' },
    { name: 'a wiretap takes only a copy', intercepts: [{ ...base, spec: { ...base.spec!, mode: 'wiretap' } }], want: undefined },
    { name: 'a replace of the container, targeted at another of its ports', intercepts: [{ ...intercept('c4:echo', 9902), spec: { ...base.spec!, mode: 'replace' } }], want: 'c4:echo' },
    { name: 'a replace of another container', intercepts: [{ ...intercept('c4:echo', 9902, { target: { ...base.target!, agentPort: 9902, containerName: 'sidecar' } }), spec: { ...base.spec!, mode: 'replace' } }], want: undefined },
    { name: 'an unknown mode (a newer manager) is not served', intercepts: [{ ...base, spec: { ...base.spec!, mode: 'mirror' } }], want: undefined },
    { name: 'the oldest of several', intercepts: [{ ...intercept('c2:echo', 9901), createdAt: 2 }, { ...intercept('c3:echo', 9901), createdAt: 1 }], want: 'c3:echo' },
    { name: 'equal ages: the smaller id', intercepts: [intercept('c2:echo', 9901), intercept('c1:echo', 9901)], want: 'c1:echo' },
  ];
  for (const c of cases) t.equal(chooseIntercept(c.intercepts, route)?.id, c.want, c.name);
  t.end();
});

t.test('the wiretaps of a route: every one of its port, oldest first, beside any intercept', (t) => {
  const route: ForwardRoute = { containerName: 'app', containerPort: 8080, agentPort: 9901, label: 'echo:http' };
  const tap = (id: string, agentPort: number, createdAt: number) => {
    const ic = intercept(id, agentPort, { createdAt });
    return { ...ic, spec: { ...ic.spec!, mode: 'wiretap' } };
  };
  const intercepts = [tap('c2:tap', 9901, 5), intercept('c1:echo', 9901), tap('c3:tap', 9902, 1), tap('c4:tap', 9901, 2)];
  t.strictSame(wiretapsOn(intercepts, route).map((ic) => ic.id), ['c4:tap', 'c2:tap']);
  t.equal(chooseIntercept(intercepts, route)?.id, 'c1:echo', 'the intercept still takes the connections');
  t.strictSame(personalIntercepts([{ ...tap('c5:tap', 9901, 1), spec: { ...tap('c5:tap', 9901, 1).spec, headers: [{ name: 'x', value: 'y' }] } }], route), [], 'a wiretap is never a personal intercept');
  t.end();
});

t.test('the personal intercepts of a route, most specific first, then the oldest', (t) => {
  const route: ForwardRoute = { containerName: 'app', containerPort: 8080, agentPort: 9901, label: 'echo:http' };
  const personal = (id: string, headers: Array<[string, string]>, createdAt = 1) => {
    const base = intercept(id, 9901);
    return { ...base, createdAt, spec: { ...base.spec!, headers: headers.map(([name, value]) => ({ name, value })) } };
  };
  const cases = [
    { name: 'none', intercepts: [], want: [] },
    { name: 'a global one is not personal', intercepts: [intercept('c1:g', 9901)], want: [] },
    { name: 'another port', intercepts: [{ ...personal('c1:a', [['x', '1']]), target: { ...intercept('x:y', 9902).target! } }], want: [] },
    { name: 'agent error', intercepts: [{ ...personal('c1:a', [['x', '1']]), disposition: InterceptDisposition.AGENT_ERROR }], want: [] },
    { name: 'more headers first', intercepts: [personal('c1:a', [['x', '1']]), personal('c2:b', [['x', '1'], ['y', '2']], 5)], want: ['c2:b', 'c1:a'] },
    { name: 'then the oldest', intercepts: [personal('c1:a', [['x', '1']], 3), personal('c2:b', [['x', '2']], 2)], want: ['c2:b', 'c1:a'] },
    { name: 'then the smaller id', intercepts: [personal('c2:b', [['x', '2']]), personal('c1:a', [['x', '1']])], want: ['c1:a', 'c2:b'] },
  ];
  for (const c of cases) t.strictSame(personalIntercepts(c.intercepts, route).map((p) => p.id), c.want, c.name);
  t.end();
});

t.test('which personal intercept a request goes to', (t) => {
  const p = (id: string, ...headers: Array<[string, string]>): PersonalIntercept => ({ id, createdAt: 0, headers: headers.map(([name, value]) => ({ name, value })) });
  const alice = p('c1:alice', ['x-user', 'alice']);
  const bob = p('c2:bob', ['X-User', 'bob']);
  const aliceTeam = p('c3:team', ['x-user', 'alice'], ['x-team', 'blue']);
  const cases: Array<{ name: string; personal: PersonalIntercept[]; request: Array<[string, string]>; want: string | undefined }> = [
    { name: 'no intercepts', personal: [], request: [['x-user', 'alice']], want: undefined },
    { name: 'no header: the app', personal: [alice, bob], request: [['host', 'echo']], want: undefined },
    { name: 'exact match', personal: [alice, bob], request: [['x-user', 'alice']], want: 'c1:alice' },
    { name: 'the other one', personal: [alice, bob], request: [['x-user', 'bob']], want: 'c2:bob' },
    { name: 'names ignore case (request)', personal: [alice], request: [['X-USER', 'alice']], want: 'c1:alice' },
    { name: 'names ignore case (intercept)', personal: [bob], request: [['x-user', 'bob']], want: 'c2:bob' },
    { name: 'values do not', personal: [alice], request: [['x-user', 'Alice']], want: undefined },
    { name: 'no prefix match', personal: [alice], request: [['x-user', 'alice2']], want: undefined },
    { name: 'all headers must match', personal: [aliceTeam], request: [['x-user', 'alice']], want: undefined },
    { name: 'all present', personal: [aliceTeam], request: [['x-team', 'blue'], ['x-user', 'alice']], want: 'c3:team' },
    { name: 'the first in order wins', personal: [aliceTeam, alice], request: [['x-team', 'blue'], ['x-user', 'alice']], want: 'c3:team' },
    { name: 'less specific when the other does not match', personal: [aliceTeam, alice], request: [['x-team', 'red'], ['x-user', 'alice']], want: 'c1:alice' },
    { name: 'a repeated header matches on any line', personal: [bob], request: [['x-user', 'alice'], ['x-user', 'bob']], want: 'c2:bob' },
    { name: 'an empty value is a value', personal: [p('c4:e', ['x-empty', ''])], request: [['x-empty', '']], want: 'c4:e' },
  ];
  for (const c of cases) t.equal(matchRequest(c.personal, { method: 'GET', target: '/', headers: c.request }), c.want, c.name);
  t.end();
});

t.test('personal intercepts by path prefix and method: ordered and matched', (t) => {
  const route: ForwardRoute = { containerName: 'app', containerPort: 8080, agentPort: 9901, label: 'echo:http' };
  const filtered = (id: string, createdAt: number, httpPathPrefix: string, httpMethods: string[], headers: Array<[string, string]> = []) => {
    const base = intercept(id, 9901);
    return { ...base, createdAt, spec: { ...base.spec!, headers: headers.map(([name, value]) => ({ name, value })), httpPathPrefix, httpMethods } };
  };
  const api = filtered('c1:api', 1, '/api/', []);
  const apiV2 = filtered('c2:v2', 2, '/api/v2/', []);
  const posts = filtered('c3:post', 3, '', ['POST']);
  const getsAndPosts = filtered('c4:rw', 0, '', ['GET', 'POST']);
  const alice = filtered('c5:alice', 9, '', [], [['x-user', 'alice']]);
  const intercepts = [getsAndPosts, posts, apiV2, api, alice];
  t.strictSame(
    personalIntercepts(intercepts, route).map((p) => p.id),
    ['c5:alice', 'c2:v2', 'c1:api', 'c3:post', 'c4:rw'],
    'a filter without headers is personal; more headers, then the longer prefix, then fewer methods',
  );
  t.equal(chooseIntercept(intercepts, route), undefined, 'none of them is a global intercept');
  const personal = personalIntercepts(intercepts, route);
  const cases: Array<{ name: string; method: string; target: string; headers?: Array<[string, string]>; want: string | undefined }> = [
    { name: 'the longer prefix first', method: 'GET', target: '/api/v2/items', want: 'c2:v2' },
    { name: 'the shorter prefix', method: 'GET', target: '/api/v1/items', want: 'c1:api' },
    { name: 'a query after the path', method: 'GET', target: '/api/?x=1', want: 'c1:api' },
    { name: 'an absolute-form target', method: 'DELETE', target: 'http://echo/api/x', want: 'c1:api' },
    { name: 'a prefix in the query only', method: 'PUT', target: '/x?to=/api/', want: undefined },
    { name: 'a POST elsewhere: one method first', method: 'POST', target: '/web', want: 'c3:post' },
    { name: 'a GET elsewhere', method: 'GET', target: '/web', want: 'c4:rw' },
    { name: 'another method elsewhere: the app', method: 'PUT', target: '/web', want: undefined },
    { name: 'a header beats a prefix', method: 'GET', target: '/api/v2/', headers: [['x-user', 'alice']], want: 'c5:alice' },
  ];
  for (const c of cases) t.equal(matchRequest(personal, { method: c.method, target: c.target, headers: c.headers ?? [] }), c.want, c.name);
  t.end();
});

t.test('header pairs from raw HTTP/1 headers and from HTTP/2 header objects', (t) => {
  t.strictSame(pairsFromRaw(['Host', 'x', 'X-User', 'a', 'X-User', 'b']), [['Host', 'x'], ['X-User', 'a'], ['X-User', 'b']]);
  t.strictSame(pairsFromRaw(['odd']), [], 'a trailing name without value is ignored');
  t.strictSame(pairsFromObject({ ':path': '/p', 'x-user': 'a', cookie: ['c=1', 'd=2'], absent: undefined }), [['x-user', 'a'], ['cookie', 'c=1'], ['cookie', 'd=2']]);
  t.end();
});
