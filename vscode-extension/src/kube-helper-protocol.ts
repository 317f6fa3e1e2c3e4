/**
 * The line protocol between the extension and its Kubernetes helper process (dist/kube-helper.js):
 * one JSON object per line each way. The helper exists because VS Code's extension host replaces
 * the HTTPS agent of every request (its proxy support), which drops the client certificate a
 * kubeconfig authenticates with; a plain Node process keeps it.
 */
import { TpError, type ErrorCategory, type KubeFlags, type WatchedKind } from '@telepresence-ts/core';

/** Extension -> helper. */
export type HelperRequest =
  | { readonly op: 'watch'; readonly id: number; readonly kind: WatchedKind; readonly namespace?: string | undefined }
  | { readonly op: 'stop'; readonly id: number }
  | { readonly op: 'install'; readonly id: number; readonly namespace: string };

export interface WireError {
  readonly category: ErrorCategory;
  readonly code: string;
  readonly message: string;
  readonly hint?: string | undefined;
}

/** Helper -> extension: a watch's objects, a progress line, the end of an install, or a failure. */
export type HelperEvent =
  | { readonly id: number; readonly objects: readonly object[] }
  | { readonly id: number; readonly progress: string }
  | { readonly id: number; readonly done: true }
  | { readonly id: number; readonly error: WireError };

/** The helper's one argument: which cluster, as kubectl flags. */
export type HelperArgs = KubeFlags;

export function toWire(err: TpError): WireError {
  return { category: err.category, code: err.code, message: err.message, hint: err.hint };
}

export function fromWire(e: WireError): TpError {
  return new TpError(e.category, e.code, e.message, { hint: e.hint });
}

/** Fields no view reads and that make objects large: dropped before they cross the pipe. */
export function slim<T extends { metadata?: { managedFields?: unknown; annotations?: Record<string, string> | undefined } | undefined }>(obj: T): T {
  if (obj.metadata === undefined) return obj;
  const { managedFields: _m, ...metadata } = obj.metadata;
  const annotations = { ...metadata.annotations };
  delete annotations['kubectl.kubernetes.io/last-applied-configuration'];
  return { ...obj, metadata: { ...metadata, annotations } };
}

/** Splits a stream's chunks into complete lines; keeps the unfinished tail for the next chunk. */
export function lineSplitter(onLine: (line: string) => void): (chunk: string) => void {
  let buffered = '';
  return (chunk) => {
    buffered += chunk;
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line !== '') onLine(line);
      nl = buffered.indexOf('\n');
    }
  };
}
