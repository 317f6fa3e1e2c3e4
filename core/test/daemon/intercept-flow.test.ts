import t from 'tap';
import { InterceptDisposition } from '@telepresence-ts/proto/manager/v1';
import { TpError } from '../../src/errors.js';
import { RESTORE_ATTEMPTS } from '../../src/daemon/intercept-flow.js';
import { RECOVERY_BACKOFF } from '../../src/daemon/session-keeper.js';
import { CONNECT_ARGS, connectedOnFakeClock, daemonSetup, spec } from '../fixtures/daemon-setup.js';
import { eventually } from '../fixtures/eventually.js';

t.test('an --env-file that cannot be written is refused before the traffic-manager is asked anything', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  await s.daemon.connect(CONNECT_ARGS);
  await t.rejects(s.daemon.intercept(spec('echo', 8080), () => undefined, { envFile: '/nonexistent-folder/web.env' }), {
    code: 'env-file-unwritable',
    message: /cannot write --env-file \/nonexistent-folder\/web.env: the folder \/nonexistent-folder does not exist/,
  });
  t.notOk(s.manager.calls.includes('PrepareIntercept'), 'nothing prepared');
});

t.test('intercept: prepare progress, create, the agent activates it, list and leave', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  s.kube.add({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'echo', namespace: 'default' }, spec: { replicas: 1 }, status: { readyReplicas: 1 } } as never);
  s.kube.add({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'telepresence-agents', namespace: 'default' }, data: { echo: '{}' } } as never);
  await s.daemon.connect(CONNECT_ARGS);
  const states: number[] = [];
  s.daemon.watchState((snap) => states.push(snap.intercepts.length));

  const progress: string[] = [];
  const info = await s.daemon.intercept(spec('echo', 8080, { servicePort: 'http' }), (l) => progress.push(l));
  t.strictSame(progress, ['preparing deployment/echo']);
  t.equal(info.id, 'sess-1:echo-default', 'name defaults to <workload>-<namespace>');
  t.equal(info.spec?.namespace, 'default', 'namespace defaults to the connection');
  t.equal(info.spec?.servicePort, 'http');
  await eventually(() => s.daemon.snapshot().intercepts[0]?.disposition === InterceptDisposition.ACTIVE, 5_000, 'ACTIVE');
  t.ok(states.includes(1), 'WatchState saw the intercept');

  const list = await s.daemon.list('');
  t.equal(list.workloads.length, 1);
  t.match(list.workloads[0], { name: 'echo', kind: 'Deployment', readyReplicas: 1, replicas: 1, agentState: 'configured' });
  t.equal(list.workloads[0]?.intercepts[0]?.id, 'sess-1:echo-default');

  await t.rejects(s.daemon.intercept(spec('other', 8080), () => undefined), { code: 'local-port-in-use', category: 'user' }, 'one local port, one intercept');
  await t.rejects(s.daemon.intercept(spec('echo', 8081), () => undefined), { code: 'intercept-exists' });
  await t.rejects(s.daemon.intercept(spec('echo', 0), () => undefined), { code: 'bad-port' });
  const before = s.manager.calls.length;
  for (const name of ['a/b', '../../etc/x', 'Upper', '-dash', 'dash-', 'x'.repeat(64), 'dot.ted']) {
    await t.rejects(s.daemon.intercept(spec('echo', 9100, { name }), () => undefined), { code: 'bad-intercept-name', category: 'user' }, `--name ${name} is refused`);
  }
  t.equal(s.manager.calls.length, before, 'before anything was asked of the manager');

  await t.rejects(s.daemon.leave('nope'), { code: 'unknown-intercept', category: 'user' });
  await s.daemon.leave('echo-default');
  t.equal(s.daemon.snapshot().intercepts.length, 0);
  t.equal(s.manager.intercepts.size, 0, 'removed on the manager');
});

t.test("the manager's TpErrors reach the caller with category, code and hint", async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  s.manager.prepareErrors.set('ghost', new TpError('user', 'unknown-workload', 'no workload named ghost in default', { hint: 'run `kubectl telepresence list`' }));
  await s.daemon.connect(CONNECT_ARGS);
  const err = await s.daemon.intercept(spec('ghost', 8080), () => undefined).catch((e: unknown) => e);
  t.match(err, { category: 'user', code: 'unknown-workload', message: 'no workload named ghost in default', hint: 'run `kubectl telepresence list`' });
  // The failed intercept released its port.
  const ok = await s.daemon.intercept(spec('echo', 8080), () => undefined);
  t.equal(ok.spec?.localPort, 8080);
});

t.test('an intercept that cannot be made again is reported lost, with the reason', async (t) => {
  const { s, clock } = await connectedOnFakeClock(t);
  await s.daemon.intercept(spec('echo', 8080), () => undefined);
  await s.daemon.intercept(spec('gone', 8081), () => undefined);
  s.manager.prepareErrors.set('gone', new TpError('user', 'workload-not-found', 'deployment gone not found in namespace default', { hint: 'check the name' }));
  // As a restarted manager: no session, no intercepts. The next heartbeat finds out.
  s.manager.expireSessions();
  clock.advance(s.manager.heartbeatSeconds * 1000);
  await eventually(() => s.daemon.status().lostIntercepts.length === 1, 5_000, 'a lost intercept');
  t.strictSame(s.daemon.status().lostIntercepts, [{ name: 'gone-default', reason: 'deployment gone not found in namespace default (check the name)' }]);
  t.strictSame(s.daemon.snapshot().intercepts.map((ii) => ii.spec?.name), ['echo-default'], 'the other one is back');
  t.match(s.daemon.status().error, /intercepts lost after the traffic-manager restarted: gone-default/);
  await s.daemon.intercept(spec('gone', 8081, { name: 'gone-default' }), () => undefined).catch(() => undefined);
  t.strictSame(s.daemon.status().lostIntercepts, [], 'intercepting the same name again clears the loss');
});

t.test('a passing failure while making intercepts again is retried, and what was made again is not made twice', async (t) => {
  const { s, clock } = await connectedOnFakeClock(t);
  await s.daemon.intercept(spec('echo', 8080), () => undefined);
  await s.daemon.intercept(spec('slow', 8081), () => undefined);
  const creates = (): number => s.manager.calls.filter((c) => c === 'CreateIntercept').length;
  // The new manager cannot prepare `slow` yet (a cluster error, which may pass).
  s.manager.prepareErrors.set('slow', new TpError('cluster', 'agent-not-injected', 'the pods of deployment slow have no traffic-agent yet'));
  s.manager.expireSessions();
  clock.advance(s.manager.heartbeatSeconds * 1000);
  await eventually(() => s.logs.some((l) => l.includes('intercept slow-default not restored yet (attempt 1 of 5)')), 5_000, 'the first attempt to fail');
  t.equal(creates(), 3, 'echo was made again');
  t.strictSame(s.daemon.status().lostIntercepts, [], 'nothing reported lost for a failure that may pass');
  s.manager.prepareErrors.delete('slow');
  clock.advance(RECOVERY_BACKOFF.maxMs);
  await eventually(() => creates() === 4 && s.daemon.status().error === '', 5_000, 'slow made again on the next attempt');
  t.strictSame(s.daemon.snapshot().intercepts.map((ii) => ii.spec?.name).sort(), ['echo-default', 'slow-default'], 'both are back');
  t.strictSame(s.daemon.status().lostIntercepts, []);
});

t.test('a failure that does not pass is reported lost after a few attempts', async (t) => {
  const { s, clock } = await connectedOnFakeClock(t);
  await s.daemon.intercept(spec('stuck', 8080), () => undefined);
  s.manager.prepareErrors.set('stuck', new TpError('cluster', 'injector-unavailable', 'the agent-injector has no ready endpoint'));
  s.manager.expireSessions();
  clock.advance(s.manager.heartbeatSeconds * 1000);
  for (let attempt = 1; attempt < RESTORE_ATTEMPTS; attempt++) {
    await eventually(() => s.logs.some((l) => l.includes(`(attempt ${attempt} of ${RESTORE_ATTEMPTS})`)), 5_000, `attempt ${attempt}`);
    clock.advance(RECOVERY_BACKOFF.maxMs);
  }
  await eventually(() => s.daemon.status().lostIntercepts.length === 1, 5_000, 'reported lost');
  t.strictSame(s.daemon.status().lostIntercepts, [{ name: 'stuck-default', reason: 'the agent-injector has no ready endpoint' }]);
  await eventually(() => s.daemon.status().error === 'intercepts lost after the traffic-manager restarted: stuck-default', 5_000, 'the recovery over');
  t.pass('the recovery ended');
});

t.test('an intercept the manager removes disappears from the daemon too', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  await s.daemon.connect(CONNECT_ARGS);
  await s.daemon.intercept(spec('echo', 8080), () => undefined);
  await eventually(() => s.daemon.snapshot().intercepts[0]?.disposition === InterceptDisposition.ACTIVE, 5_000, 'ACTIVE');
  s.manager.removeAll();
  await eventually(() => s.daemon.snapshot().intercepts.length === 0, 5_000, 'the intercept to go');
  const again = await s.daemon.intercept(spec('echo', 8080), () => undefined);
  t.equal(again.spec?.localPort, 8080, 'its local port is free again');
});

t.test('ingest: no local port, a name of its own beside an intercept of the same workload, no traffic path', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  await s.daemon.connect(CONNECT_ARGS);
  const intercepted = await s.daemon.intercept(spec('echo', 8080), () => undefined);
  const ingest = await s.daemon.intercept({ ...spec('echo', 0), mode: 'ingest' }, () => undefined);
  t.equal(ingest.id, 'sess-1:echo-default-ingest', 'named <workload>-<namespace>-ingest by default');
  t.equal(ingest.spec?.mode, 'ingest');
  t.equal(ingest.spec?.localPort, 0, 'no local port');
  t.equal(s.daemon.remoteOf('echo-default-ingest')?.traffic, 'none', 'and no traffic path');
  t.equal(s.daemon.remoteOf(intercepted.spec?.name ?? '')?.traffic !== 'none', true, 'the intercept keeps its own');
  const again = await s.daemon.intercept({ ...spec('echo', 0), name: 'echo-second', mode: 'ingest' }, () => undefined);
  t.equal(again.spec?.localPort, 0, 'a second ingest is not refused for sharing "port 0"');
  await t.rejects(s.daemon.intercept({ ...spec('echo', 0), mode: 'mirror' }, () => undefined), { code: 'bad-mode' }, 'an unknown mode is refused');
  await s.daemon.leave('echo-default-ingest');
  t.equal(s.daemon.snapshot().intercepts.length, 2);
});

t.test('replace: a name of its own, no single local port; its local ports are checked before the cluster is touched', async (t) => {
  const s = await daemonSetup();
  t.teardown(async () => {
    await s.daemon.shutdown();
    s.manager.stop();
  });
  await s.daemon.connect(CONNECT_ARGS);
  await s.daemon.intercept(spec('api', 18080), () => undefined);
  const replaceOf = (ports: Array<{ containerPort: number; localPort: number }>, name = '') => ({ ...spec('echo', 0), name, mode: 'replace', ports });
  const prepares = () => s.manager.calls.filter((c) => c === 'PrepareIntercept').length;
  const before = prepares();
  await t.rejects(s.daemon.intercept(replaceOf([{ containerPort: 8080, localPort: 18080 }]), () => undefined), {
    code: 'local-port-in-use',
    message: 'local port 18080 already receives intercept api-default',
  });
  await t.rejects(s.daemon.intercept(replaceOf([{ containerPort: 8080, localPort: 70000 }]), () => undefined), { code: 'bad-port' });
  t.equal(prepares(), before, 'nothing prepared for either');
  const replaced = await s.daemon.intercept(replaceOf([{ containerPort: 8080, localPort: 28080 }]), () => undefined);
  t.equal(replaced.id, 'sess-1:echo-default-replace', 'named <workload>-<namespace>-replace by default');
  t.equal(replaced.spec?.localPort, 0, 'no single local port');
  t.not(s.daemon.remoteOf('echo-default-replace')?.traffic, 'none', 'its traffic has a path');
  await t.rejects(s.daemon.intercept(spec('web', 28080), () => undefined), { code: 'local-port-in-use', message: 'local port 28080 already receives intercept echo-default-replace' }, 'an intercept after it');
  await s.daemon.leave('echo-default-replace');
  t.equal(s.daemon.snapshot().intercepts.length, 1);
});
