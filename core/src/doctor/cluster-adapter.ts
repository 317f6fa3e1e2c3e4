/**
 * The cluster side of doctor's ports, over @kubernetes/client-node (the only doctor file that
 * imports it at run time; adapters.ts loads it on first use): the KubeApi adapter for reads and
 * port-forwards, SelfSubjectAccessReview and SelfSubjectReview for the rights, a dryRun=All pod
 * create for the webhook, TLS through a pod stream for the injector's certificate, and the
 * manager's health, version and ClusterInfo through a port-forward.
 */
import { AuthenticationV1Api, AuthorizationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { credentials } from '@grpc/grpc-js';
import { ManagerClient, type ClusterInfo } from '@telepresence-ts/proto/manager/v1';
import { request } from 'node:http';
import { hostname, userInfo } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { HEALTHZ_PATH } from '../contracts.js';
import { TpError, toTpError } from '../errors.js';
import { deadlineIn, unary } from '../grpc-call.js';
import { ClientNodeKubeApi, kubeError, loadKubeConfig } from '../kube/client-node-kube-api.js';
import type { KubeFlags } from '../kube/kube-api.js';
import type { V1Pod } from '../kube/kube-types.js';
import type { DoctorCluster } from './doctor.js';
import type { ManagerAnswers } from './port-forward.js';
import type { AccessQuestion } from './rbac.js';

/** Each network step of a check is bounded: a doctor that hangs is no help. */
const STEP_TIMEOUT_MS = 10_000;

function withTimeout<T>(what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TpError('cluster', 'doctor-timeout', `${what} did not finish within ${STEP_TIMEOUT_MS / 1000} s`)), STEP_TIMEOUT_MS);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** `GET /healthz` on 127.0.0.1:port; resolves with the status code. */
function healthStatus(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: HEALTHZ_PATH, method: 'GET', agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Builds the real DoctorCluster for a set of kubectl flags. */
export function createDoctorCluster(flags: KubeFlags): DoctorCluster {
  const { kc, target } = loadKubeConfig(flags);
  const kube = new ClientNodeKubeApi(kc, target);
  const authz = kc.makeApiClient(AuthorizationV1Api);
  const authn = kc.makeApiClient(AuthenticationV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  return {
    target,
    get: (ref) => kube.get(ref),
    list: (apiVersion, kind, options) => kube.list(apiVersion, kind, options),

    async canI(q: AccessQuestion) {
      try {
        const review = await authz.createSelfSubjectAccessReview({
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SelfSubjectAccessReview',
            spec: { resourceAttributes: { verb: q.verb, resource: q.resource, group: q.group ?? '', subresource: q.subresource, namespace: q.namespace } },
          },
        });
        return { allowed: review.status?.allowed === true };
      } catch (err: unknown) {
        throw kubeError(err, target, 'asking the API server for your rights');
      }
    },

    async whoami() {
      try {
        const review = await authn.createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
        return review.status?.userInfo?.username;
      } catch {
        return undefined;
      }
    },

    async dryRunPod(namespace: string, pod: V1Pod) {
      try {
        return await core.createNamespacedPod({ namespace, body: pod, dryRun: 'All' });
      } catch (err: unknown) {
        throw kubeError(err, target, `creating a dry-run pod in namespace ${namespace}`);
      }
    },

    async verifyServedCertificate(namespace, pod, port, caPem, serverName) {
      const stream = await withTimeout(`a port-forward to ${namespace}/${pod}:${port}`, kube.openPodStream(namespace, pod, port));
      try {
        await withTimeout(
          `a TLS handshake with ${namespace}/${pod}:${port}`,
          new Promise<void>((resolve, reject) => {
            // The API server's own rules: only the caBundle is trusted, and the name must match.
            const socket = tlsConnect({ socket: stream, ca: caPem, servername: serverName, rejectUnauthorized: true }, () => {
              socket.end();
              resolve();
            });
            socket.once('error', (err: Error) => reject(new TpError('cluster', 'webhook-certificate', err.message, { cause: err })));
          }),
        );
      } finally {
        stream.destroy();
      }
    },

    async askManager(namespace, pod, port): Promise<ManagerAnswers> {
      const forward = await kube.portForward(namespace, pod, port);
      const client = new ManagerClient(`127.0.0.1:${forward.localPort}`, credentials.createInsecure());
      try {
        const health = await withTimeout(`GET ${HEALTHZ_PATH} through the port-forward`, healthStatus(forward.localPort));
        const options = { deadline: deadlineIn(STEP_TIMEOUT_MS) };
        const { version } = await unary(client.version.bind(client), {}, options);
        let clusterInfo: ClusterInfo | undefined;
        let clusterInfoError: string | undefined;
        try {
          // ClusterInfo is given to sessions only: a short one, departed at once.
          const session = await unary(
            client.arriveAsClient.bind(client),
            { name: `${userInfo().username}@${hostname()} (doctor)`, installId: '', product: 'doctor', version, resumeSessionId: '' },
            { deadline: deadlineIn(STEP_TIMEOUT_MS) },
          );
          try {
            clusterInfo = await unary(client.getClusterInfo.bind(client), session, { deadline: deadlineIn(STEP_TIMEOUT_MS) });
          } finally {
            await unary(client.depart.bind(client), session, { deadline: deadlineIn(STEP_TIMEOUT_MS) }).catch(() => undefined);
          }
        } catch (err: unknown) {
          clusterInfoError = toTpError(err).message;
        }
        return { health, version, clusterInfo, clusterInfoError };
      } finally {
        client.close();
        await forward.close();
      }
    },
  };
}
