/**
 * The HTTPS edge of the agent-injector: AdmissionReview v1 in, AdmissionReview v1 out, for
 * `POST INJECTOR_WEBHOOK_PATH`, plus `GET /healthz`. The decision is the `admit` function passed in;
 * this module only translates, times out and logs.
 *
 * It always answers `allowed: true`: the injector must never block a pod (the registration's
 * `failurePolicy: Ignore` covers it being down, this covers it failing).
 */
import { HEALTHZ_PATH, INJECTOR_WEBHOOK_PATH } from '@telepresence-ts/core/contracts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../shared/log.js';
import type { AdmissionRequest, Decision } from './admit.js';

export interface TlsFiles {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

export interface WebhookOptions {
  /** 0 picks a free port (tests). */
  readonly port: number;
  /** Defaults to every interface (the API server reaches the pod IP). */
  readonly host?: string;
  readonly tls: TlsFiles;
  readonly admit: (request: AdmissionRequest) => Promise<Decision>;
  readonly log: Logger;
  /** /healthz answers 503 until this is true (the ConfigMap cache has synced). */
  readonly ready?: () => boolean;
  /**
   * Time allowed for one decision. The registration's timeoutSeconds is 5; answering "admit
   * unchanged" in 3 s leaves the rest for TLS and the network, so a slow API server costs the pod
   * its agent rather than the API server's timeout path.
   */
  readonly deadlineMs?: number;
}

export interface WebhookServer {
  readonly port: number;
  /** Swaps the serving certificate for new connections (a rotated Secret). */
  setTls(tls: TlsFiles): void;
  close(): Promise<void>;
}

const DEFAULT_DEADLINE_MS = 3000;
// The API server caps request bodies at 3 MiB; a pod review is far smaller.
const MAX_BODY_BYTES = 8 * 1024 * 1024;

/** The AdmissionReview v1 answer: allowed, with the patch when there is one. */
export function admissionResponse(uid: string, decision: Decision): unknown {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid,
      allowed: true,
      ...(decision.patch.length > 0
        ? { patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(decision.patch)).toString('base64') }
        : {}),
    },
  };
}

function podLabel(request: AdmissionRequest): string {
  const meta = (request.object as { metadata?: { name?: string; generateName?: string } } | undefined)?.metadata;
  // Pods made by a ReplicaSet have only generateName at admission; the API server names them after.
  const name = request.name || meta?.name || (meta?.generateName !== undefined ? `${meta.generateName}*` : '(unnamed)');
  return `${request.namespace ?? ''}/${name}`;
}

async function withDeadline(decide: Promise<Decision>, ms: number): Promise<Decision> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Decision>((resolve) => {
    timer = setTimeout(() => resolve({ patch: [], outcome: 'failed', reason: `no decision within ${ms} ms` }), ms);
  });
  try {
    return await Promise.race([decide, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Starts the HTTPS server; resolves once it listens. */
export async function startWebhookServer(options: WebhookOptions): Promise<WebhookServer> {
  const { log } = options;
  const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const reply = (status: number, body: unknown): void => {
      const json = typeof body !== 'string';
      res.writeHead(status, { 'content-type': json ? 'application/json' : 'text/plain' });
      res.end(json ? JSON.stringify(body) : `${body}\n`);
    };
    const path = new URL(req.url ?? '/', 'https://injector').pathname;
    if (path === HEALTHZ_PATH && (req.method === 'GET' || req.method === 'HEAD')) {
      const ok = options.ready?.() ?? true;
      return reply(ok ? 200 : 503, ok ? 'ok' : 'agent configurations not loaded yet');
    }
    if (path !== INJECTOR_WEBHOOK_PATH) return reply(404, 'not found');
    if (req.method !== 'POST') return reply(405, 'POST an AdmissionReview');

    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) return reply(413, 'body too large');
      chunks.push(chunk as Buffer);
    }
    let request: AdmissionRequest | undefined;
    try {
      const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { kind?: string; request?: AdmissionRequest };
      request = review.kind === 'AdmissionReview' ? review.request : undefined;
    } catch {
      request = undefined;
    }
    if (request === undefined || typeof request.uid !== 'string') {
      log.warn('malformed admission review', { remote: req.socket.remoteAddress });
      return reply(400, 'expected an AdmissionReview v1 with a request');
    }
    const started = Date.now();
    const decision = await withDeadline(options.admit(request), deadlineMs);
    const fields = {
      uid: request.uid,
      pod: podLabel(request),
      outcome: decision.outcome,
      reason: decision.reason,
      ...(decision.workload === undefined ? {} : { workload: decision.workload }),
      ...(decision.hash === undefined ? {} : { hash: decision.hash }),
      ops: decision.patch.length,
      ms: Date.now() - started,
    };
    if (decision.outcome === 'failed') log.warn('admitted without agent', fields);
    else log.info(decision.outcome === 'injected' ? 'injected agent' : 'admitted unchanged', fields);
    reply(200, admissionResponse(request.uid, decision));
  };

  const server: Server = createServer({ cert: options.tls.cert, key: options.tls.key }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.error('webhook request failed', { error: err instanceof Error ? err.message : String(err) });
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    setTls: (tls) => server.setSecureContext({ cert: tls.cert, key: tls.key }),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // The API server keeps connections alive; without this close() waits for them to idle out.
        server.closeAllConnections();
      }),
  };
}
