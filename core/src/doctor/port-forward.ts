/**
 * A real port-forward to the traffic-manager's pod, as connect makes one: the manager's API port
 * (which also answers `GET /healthz`) forwarded to a local port, the health endpoint asked through
 * it, then the manager's version and ClusterInfo (the cluster's subnets, which the outbound checks
 * compare with this workstation's routes) over gRPC through the same forward.
 */
import type { ClusterInfo } from '@telepresence-ts/proto/manager/v1';
import { HEALTHZ_PATH } from '../contracts.js';
import { majorMinor } from '../daemon/daemon.js';
import { TpError, toTpError } from '../errors.js';
import { kubectlFor, type KubeApi } from '../kube/kube-api.js';
import { findManagerPod } from '../kube/manager-pod.js';
import { fail, ok, type Finding } from './finding.js';
import { installCommand } from './installation.js';

/** What the manager says through a forward. */
export interface ManagerAnswers {
  /** The HTTP status of `GET /healthz`. */
  readonly health: number;
  readonly version: string;
  /** undefined when the manager did not give it (the finding says why, in `clusterInfoError`). */
  readonly clusterInfo?: ClusterInfo | undefined;
  readonly clusterInfoError?: string | undefined;
}

export interface ManagerProbe extends Pick<KubeApi, 'target' | 'get' | 'list'> {
  /** Port-forwards to `pod:port` in `namespace` and asks the manager through that forward. */
  askManager(namespace: string, pod: string, port: number): Promise<ManagerAnswers>;
}

const CHECK = 'port-forward';

/**
 * The probe as the KubeApi that findManagerPod takes: it reads only `target`, `get` and `list`,
 * so the rest are never called here.
 */
function readOnlyKube(probe: ManagerProbe): KubeApi {
  const unused = (): Promise<never> => Promise.reject(new TpError('internal', 'unexpected', 'findManagerPod wrote to the cluster'));
  return { target: probe.target, get: (ref) => probe.get(ref), list: (v, k, o) => probe.list(v, k, o), apply: unused, delete: unused, portForward: unused, openPodStream: unused };
}

/** The port-forward finding, and the cluster's subnets when the manager gave them. */
export async function checkPortForward(
  probe: ManagerProbe,
  managerNamespace: string,
  clientVersion: string,
): Promise<{ finding: Finding; clusterInfo?: ClusterInfo | undefined; clusterInfoError?: string | undefined }> {
  let pod: { name: string; port: number };
  try {
    pod = await findManagerPod(readOnlyKube(probe), managerNamespace);
  } catch (err: unknown) {
    const e = toTpError(err);
    const why = `not tried: ${e.message}`;
    return { finding: fail(CHECK, 'permissions', why, e.hint ?? installCommand(managerNamespace)), clusterInfoError: why };
  }
  const where = `${managerNamespace}/${pod.name}:${pod.port}`;
  let answers: ManagerAnswers;
  try {
    answers = await probe.askManager(managerNamespace, pod.name, pod.port);
  } catch (err: unknown) {
    const e = toTpError(err);
    const fix = e.code === 'kube-forbidden' ? `you need create pods/portforward in ${managerNamespace} (see rbac-connect)` : (e.hint ?? `${kubectlFor(probe.target)} -n ${managerNamespace} port-forward pod/${pod.name} ${pod.port}`);
    return { finding: fail(CHECK, 'permissions', `port-forward to ${where} failed: ${e.message}`, fix), clusterInfoError: 'the traffic-manager could not be reached' };
  }
  if (answers.health !== 200) {
    return {
      finding: fail(CHECK, 'permissions', `port-forward to ${where} works, but ${HEALTHZ_PATH} answered ${answers.health}`, `${kubectlFor(probe.target)} -n ${managerNamespace} logs pod/${pod.name}`),
      clusterInfo: answers.clusterInfo,
      clusterInfoError: answers.clusterInfoError,
    };
  }
  if (majorMinor(answers.version) !== majorMinor(clientVersion)) {
    return {
      finding: fail(CHECK, 'permissions', `port-forward to ${where} works, but the traffic-manager is v${answers.version} and this client v${clientVersion}: connect refuses another major.minor`, installCommand(managerNamespace)),
      clusterInfo: answers.clusterInfo,
      clusterInfoError: answers.clusterInfoError,
    };
  }
  return {
    finding: ok(CHECK, 'permissions', `port-forward to ${where}: ${HEALTHZ_PATH} answered 200, traffic-manager v${answers.version} over gRPC`),
    clusterInfo: answers.clusterInfo,
    clusterInfoError: answers.clusterInfoError,
  };
}
