/**
 * The KubeApi adapter over @kubernetes/client-node. Flags resolve like kubectl's: --kubeconfig
 * replaces KUBECONFIG (itself a list of files merged) and ~/.kube/config; --context replaces the
 * current context; --namespace replaces the context's namespace, which defaults to `default`.
 */
import { ApiException, KubeConfig, KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';
import net from 'node:net';
import { delimiter } from 'node:path';
import type { Duplex } from 'node:stream';
import { openPodStream } from './pod-stream.js';
import { splice, spliceSocketOptions } from '../splice.js';
import { TpError } from '../errors.js';
import { kubectlFor, type ForwardErrorListener, type KubeApi, type KubeFlags, type KubeObject, type KubeTarget, type ListOptions, type ObjectRef, type PortForward } from './kube-api.js';

/** The field manager of our server-side applies: objects we own show it in managedFields. */
export const FIELD_MANAGER = 'telepresence-ts';

/** Loads the kubeconfig the way kubectl would and resolves context and namespace. */
export function loadKubeConfig(flags: KubeFlags): { kc: KubeConfig; target: KubeTarget } {
  const kc = new KubeConfig();
  try {
    const envFiles = (flags.kubeconfigEnv ?? '').split(delimiter).filter((f) => f !== '');
    if (flags.kubeconfig !== undefined && flags.kubeconfig !== '') {
      kc.loadFromFile(flags.kubeconfig);
    } else if (envFiles.length > 0) {
      // As kubectl merges $KUBECONFIG: the first file to set a value wins.
      kc.loadFromFile(envFiles[0] ?? '');
      for (const file of envFiles.slice(1)) {
        const more = new KubeConfig();
        more.loadFromFile(file);
        kc.mergeConfig(more);
      }
    } else {
      kc.loadFromDefault();
    }
  } catch (err: unknown) {
    throw new TpError('config', 'bad-kubeconfig', `cannot read the kubeconfig: ${err instanceof Error ? err.message : String(err)}`, {
      hint: 'check --kubeconfig or $KUBECONFIG',
      cause: err,
    });
  }
  if (flags.context !== undefined && flags.context !== '') {
    if (kc.getContextObject(flags.context) === null) {
      const known = kc.getContexts().map((c) => c.name);
      throw new TpError('user', 'unknown-context', `the kubeconfig has no context "${flags.context}"`, {
        hint: known.length > 0 ? `use one of: --context ${known.join(', --context ')}` : 'check --kubeconfig or $KUBECONFIG',
      });
    }
    kc.setCurrentContext(flags.context);
  }
  const context = kc.getCurrentContext();
  const contextObject = context === '' ? null : kc.getContextObject(context);
  const cluster = kc.getCurrentCluster();
  if (contextObject === null || cluster === null) {
    throw new TpError('config', 'no-kube-context', 'the kubeconfig has no current context', {
      hint: 'pass --context <name>, or run `kubectl config use-context <name>`',
    });
  }
  const namespace = flags.namespace !== undefined && flags.namespace !== '' ? flags.namespace : (contextObject.namespace ?? 'default');
  const kubeconfig = flags.kubeconfig !== undefined && flags.kubeconfig !== '' ? flags.kubeconfig : undefined;
  return { kc, target: { context, namespace, server: cluster.server, kubeconfig } };
}

function apiMessage(err: ApiException<unknown>): string {
  const body: unknown = err.body;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: unknown };
      if (typeof parsed.message === 'string') {
        return parsed.message;
      }
    } catch {
      return body;
    }
  }
  if (typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string') {
    return (body as { message: string }).message;
  }
  return `HTTP ${err.code}`;
}

/** Maps a client-node failure to a TpError: HTTP answers by status, anything else is unreachability. */
export function kubeError(err: unknown, target: KubeTarget, what: string): TpError {
  if (err instanceof TpError) {
    return err;
  }
  if (err instanceof ApiException) {
    const message = apiMessage(err);
    if (err.code === 401) {
      return new TpError('config', 'kube-unauthorized', `${what}: the cluster did not accept our credentials: ${message}`, {
        hint: `check the credentials of context "${target.context}"`,
        cause: err,
      });
    }
    if (err.code === 403) {
      return new TpError('config', 'kube-forbidden', `${what}: ${message}`, {
        hint: 'ask a cluster admin for the RBAC this needs, or use a --context that has it',
        cause: err,
      });
    }
    return new TpError('cluster', 'kube-api-error', `${what}: ${message}`, { cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new TpError('cluster', 'cluster-unreachable', `cannot reach the cluster at ${target.server}: ${message}`, {
    hint: `check that \`${kubectlFor(target)} get namespaces\` works`,
    cause: err,
  });
}

function describe(ref: ObjectRef): string {
  return `${ref.kind.toLowerCase()}/${ref.name}${ref.namespace !== undefined ? ` in namespace ${ref.namespace}` : ''}`;
}

/** Builds the real KubeApi for a set of flags. */
export async function createKubeApi(flags: KubeFlags): Promise<KubeApi> {
  const { kc, target } = loadKubeConfig(flags);
  return new ClientNodeKubeApi(kc, target);
}

export class ClientNodeKubeApi implements KubeApi {
  readonly target: KubeTarget;
  private readonly kc: KubeConfig;
  private readonly objects: KubernetesObjectApi;

  constructor(kc: KubeConfig, target: KubeTarget) {
    this.kc = kc;
    this.target = target;
    this.objects = KubernetesObjectApi.makeApiClient(kc);
  }

  async get<T extends KubeObject = KubeObject>(ref: ObjectRef): Promise<T | undefined> {
    try {
      const spec = { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } };
      return (await this.objects.read(spec)) as T;
    } catch (err: unknown) {
      if (err instanceof ApiException && err.code === 404) {
        return undefined;
      }
      throw kubeError(err, this.target, `reading ${describe(ref)}`);
    }
  }

  async list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, options: ListOptions = {}): Promise<T[]> {
    try {
      const result = await this.objects.list(apiVersion, kind, options.namespace, undefined, undefined, undefined, options.fieldSelector, options.labelSelector);
      // List items come without apiVersion/kind; callers that pass them back (delete) need both.
      return result.items.map((item) => ({ ...item, apiVersion, kind }) as unknown as T);
    } catch (err: unknown) {
      if (err instanceof ApiException && err.code === 404) {
        return [];
      }
      throw kubeError(err, this.target, `listing ${kind}s`);
    }
  }

  async apply(obj: KubeObject, options: { dryRun?: boolean } = {}): Promise<void> {
    try {
      await this.objects.patch(obj as never, undefined, options.dryRun === true ? 'All' : undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    } catch (err: unknown) {
      throw kubeError(err, this.target, `applying ${describe({ apiVersion: obj.apiVersion ?? '', kind: obj.kind ?? '', name: obj.metadata?.name ?? '', namespace: obj.metadata?.namespace })}`);
    }
  }

  async delete(ref: ObjectRef): Promise<boolean> {
    try {
      const spec = { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace: ref.namespace } };
      await this.objects.delete(spec, undefined, undefined, undefined, undefined, 'Background');
      return true;
    } catch (err: unknown) {
      if (err instanceof ApiException && err.code === 404) {
        return false;
      }
      throw kubeError(err, this.target, `deleting ${describe(ref)}`);
    }
  }

  async portForward(namespace: string, pod: string, port: number, onError?: ForwardErrorListener): Promise<PortForward> {
    return startPortForward(this.kc, this.target, namespace, pod, port, onError);
  }

  openPodStream(namespace: string, pod: string, port: number): Promise<Duplex> {
    return openPodStream(this.kc, namespace, pod, port);
  }
}

/**
 * A net.Server on 127.0.0.1:0 that opens one port-forward stream per accepted socket (as kubectl
 * does with one SPDY stream pair per connection), so HTTP/2 from grpc-js, or anything else,
 * flows over it unchanged. The streams are ours (pod-stream.ts), not client-node's PortForward:
 * the manager's relayed tunnels and sshfs mounts move bulk data this way, and client-node's
 * channel protocol over WebSocket, masked and without backpressure, cost the container runtime
 * and the API server several times more per byte than SPDY does.
 */
async function startPortForward(
  kc: KubeConfig,
  target: KubeTarget,
  namespace: string,
  pod: string,
  port: number,
  onError: ForwardErrorListener = () => undefined,
): Promise<PortForward> {
  const sockets = new Set<net.Socket>();
  const what = `port-forward to ${namespace}/${pod}:${port}`;
  // Paused until its stream is open: what the socket sends first waits in the kernel meanwhile.
  const server = net.createServer({ pauseOnConnect: true, ...spliceSocketOptions }, (socket) => {
    // The manager's gRPC (tunnels included) flows here: no Nagle delay on small writes.
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    openPodStream(kc, namespace, pod, port).then(
      (stream) => {
        if (socket.destroyed) {
          stream.destroy();
          return;
        }
        // The API server's report of a failed dial inside the pod, or a broken stream; the local
        // socket's own errors are its client's business.
        stream.once('error', (err: Error) => {
          if (err instanceof TpError) onError(err);
        });
        void splice(socket, stream);
      },
      (err: unknown) => {
        onError(err instanceof TpError ? err : kubeError(err, target, what));
        socket.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const localPort = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    localPort,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) {
          socket.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
