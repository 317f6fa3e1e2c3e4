/**
 * A mutating admission webhook served over TLS by the test process, so an e2e suite can prove
 * the API server calls out to a workstation-side server (and later suites can stand in for, or
 * sit beside, the agent injector). The decision is a plain function of the AdmissionRequest; this
 * module only does the AdmissionReview v1 envelope, the base64 JSONPatch and the bookkeeping.
 */
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface GroupVersionKind {
  readonly group: string;
  readonly version: string;
  readonly kind: string;
}

/** The parts of admission.k8s.io/v1 AdmissionRequest the suites read. */
export interface AdmissionRequest {
  readonly uid: string;
  readonly kind: GroupVersionKind;
  readonly resource?: { readonly group: string; readonly version: string; readonly resource: string };
  readonly namespace?: string;
  /** Empty for objects created with generateName; read `object.metadata` then. */
  readonly name?: string;
  readonly operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  readonly object?: unknown;
  readonly oldObject?: unknown;
  readonly dryRun?: boolean;
  readonly userInfo?: { readonly username?: string };
}

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly status?: { readonly code?: number; readonly message?: string };
  readonly patchType?: 'JSONPatch';
  /** base64 of the JSON-encoded patch array. */
  readonly patch?: string;
}

export interface AdmissionReview {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly request?: AdmissionRequest;
  readonly response?: AdmissionResponse;
}

/** RFC 6902. */
export interface JsonPatchOperation {
  readonly op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  readonly path: string;
  readonly value?: unknown;
  readonly from?: string;
}

export interface AdmissionDecision {
  readonly allowed: boolean;
  /** Omitted or empty: the object is admitted unchanged. */
  readonly patch?: readonly JsonPatchOperation[];
  /** Shown to the client when `allowed` is false. */
  readonly message?: string;
}

export type Admit = (request: AdmissionRequest) => AdmissionDecision | Promise<AdmissionDecision>;

/** RFC 6901 escaping of one path segment: `tp-smoke/mutated` -> `tp-smoke~1mutated`. */
export function escapeJsonPointerSegment(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

interface WithMetadata {
  readonly metadata?: { readonly labels?: Readonly<Record<string, string>> | null };
}

/**
 * The patch that makes `object` carry label `key=value`. JSON Patch cannot add a key under a map
 * that does not exist, so a missing `metadata.labels` is added whole.
 */
export function addLabelPatch(object: unknown, key: string, value: string): JsonPatchOperation[] {
  const labels = (object as WithMetadata | null | undefined)?.metadata?.labels;
  if (labels === undefined || labels === null) {
    return [{ op: 'add', path: '/metadata/labels', value: { [key]: value } }];
  }
  if (labels[key] === value) return [];
  return [{ op: 'add', path: `/metadata/labels/${escapeJsonPointerSegment(key)}`, value }];
}

/** Wraps a decision in the AdmissionReview v1 response envelope, echoing the request's uid. */
export function admissionResponse(request: AdmissionRequest, decision: AdmissionDecision): AdmissionReview {
  const patch = decision.patch ?? [];
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: {
      uid: request.uid,
      allowed: decision.allowed,
      ...(decision.allowed || decision.message === undefined ? {} : { status: { code: 403, message: decision.message } }),
      ...(decision.allowed && patch.length > 0
        ? { patchType: 'JSONPatch' as const, patch: Buffer.from(JSON.stringify(patch)).toString('base64') }
        : {}),
    },
  };
}

export interface WebhookServerOptions {
  /** The address to listen on; the API server must be able to reach it (TP_HOST_ADDRESS). */
  readonly host: string;
  /** 0 (default) picks a free port. */
  readonly port?: number;
  readonly tls: { readonly certPem: string; readonly keyPem: string };
  /** The path the webhook is registered under. */
  readonly path?: string;
  readonly admit: Admit;
}

export interface WebhookServer {
  readonly host: string;
  readonly port: number;
  /** `https://host:port/path`, ready for `clientConfig.url` (IPv6 hosts bracketed). */
  readonly url: string;
  /** Every well-formed AdmissionRequest received, in arrival order. */
  readonly requests: readonly AdmissionRequest[];
  close(): Promise<void>;
}

// The API server caps request bodies at 3 MiB by default; anything far beyond is not a review.
const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Starts the HTTPS server; resolves once it is listening. */
export async function startWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const path = options.path ?? '/mutate';
  const requests: AdmissionRequest[] = [];

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const reply = (status: number, body: unknown): void => {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
      res.end(text);
    };
    const url = new URL(req.url ?? '/', 'https://webhook');
    if (url.pathname !== path) return reply(404, `no webhook at ${url.pathname}`);
    if (req.method !== 'POST') return reply(405, 'POST an AdmissionReview');

    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) return reply(413, 'body too large');
      chunks.push(chunk as Buffer);
    }
    let review: AdmissionReview;
    try {
      review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as AdmissionReview;
    } catch {
      return reply(400, 'body is not JSON');
    }
    const request = review.request;
    if (review.kind !== 'AdmissionReview' || request === undefined || typeof request.uid !== 'string') {
      return reply(400, 'expected an AdmissionReview with a request');
    }
    requests.push(request);
    let decision: AdmissionDecision;
    try {
      decision = await options.admit(request);
    } catch (err) {
      // Deny rather than 500: the API server then shows this message to whoever created the object.
      decision = { allowed: false, message: `webhook failed: ${err instanceof Error ? err.message : String(err)}` };
    }
    reply(200, admissionResponse(request, decision));
  };

  const server: Server = createServer({ cert: options.tls.certPem, key: options.tls.keyPem }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostInUrl = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    host: options.host,
    port,
    url: `https://${hostInUrl}:${port}${path}`,
    requests,
    close: () =>
      new Promise<void>((resolve, reject) => {
        // The API server keeps connections alive; without this, close() waits for them to idle out.
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
