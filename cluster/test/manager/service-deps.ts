/** ServiceDeps of a traffic-manager under test: no cluster, a fixed ClusterInfo; tests override what they exercise. */
import type { ClusterInfo } from '@telepresence-ts/proto/manager/v1';
import type { ServiceDeps } from '../../src/manager/service.js';
import type { State } from '../../src/manager/state.js';
import { createLogger } from '../../src/shared/log.js';
import type { FakeClock } from '../shared/fake-clock.js';
import { FakeKube } from './fake-kube.js';

export const TEST_CLUSTER_INFO: ClusterInfo = { podSubnets: [], serviceSubnets: [], clusterDomain: 'cluster.local', dnsServer: '' };

export function testServiceDeps(state: State, clock: FakeClock, overrides: Partial<ServiceDeps> = {}): ServiceDeps {
  return {
    state,
    kube: new FakeKube(),
    clock,
    build: { agentImage: 'a', managerHost: 'traffic-manager.tp-system', managerPort: 8081, logLevel: 'info' },
    prepareTimeoutMs: 1000,
    log: createLogger('traffic-manager', 'error', () => undefined),
    clusterInfo: { get: () => Promise.resolve(TEST_CLUSTER_INFO), dns: () => Promise.resolve(TEST_CLUSTER_INFO) },
    ...overrides,
  };
}
