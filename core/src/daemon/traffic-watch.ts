/**
 * The daemon's WatchTraffic: which engagement a name means, and the manager's stream of its
 * traffic relayed to the caller until either side ends it.
 */
import { status as grpcStatus } from '@grpc/grpc-js';
import type { InterceptInfo, ManagerClient, SessionInfo, TrafficEvent } from '@telepresence-ts/proto/manager/v1';
import { TpError } from '../errors.js';
import { fromServiceError } from '../wire-errors.js';

/** Where a relayed stream goes. */
export interface TrafficSink {
  next(event: TrafficEvent): void;
  /** The stream ended: cleanly (the manager stopped) or with why. */
  end(err?: TpError): void;
}

/**
 * The engagement `name` names: one of ours first, else another client's of that name (in
 * `namespace` when given). `unknown-intercept` names the known ones; `ambiguous-intercept` when
 * several clients have one of that name and no namespace tells them apart.
 */
export function resolveEngagement(name: string, namespace: string, own: readonly InterceptInfo[], all: readonly InterceptInfo[]): InterceptInfo {
  const inNs = (ii: InterceptInfo): boolean => namespace === '' || ii.spec?.namespace === namespace;
  const mine = own.find((ii) => ii.spec?.name === name && inNs(ii));
  if (mine !== undefined) return mine;
  const others = all.filter((ii) => ii.spec?.name === name && inNs(ii));
  const [only, second] = others;
  if (only !== undefined && second === undefined) return only;
  if (only !== undefined) {
    throw new TpError('user', 'ambiguous-intercept', `${others.length} intercepts are named "${name}": ${others.map((ii) => `${ii.clientName} in ${ii.spec?.namespace ?? ''}`).join(', ')}`, {
      hint: 'name the namespace with --namespace',
    });
  }
  const known = [...new Set(all.map((ii) => ii.spec?.name ?? '').filter((n) => n !== ''))];
  throw new TpError('user', 'unknown-intercept', `no intercept or wiretap is named "${name}"${namespace !== '' ? ` in namespace ${namespace}` : ''}`, {
    hint: known.length > 0 ? `the known ones: ${known.join(', ')}` : 'there is none now: start one with `kubectl telepresence intercept` (or `list` them)',
  });
}

/**
 * Relays the manager's WatchTraffic stream of `interceptId` to `sink`; the returned function
 * cancels it (and `sink` hears nothing more). A manager without WatchTraffic answers
 * UNIMPLEMENTED: `manager-too-old`.
 */
export function relayTraffic(manager: ManagerClient, session: SessionInfo, interceptId: string, bodyBytes: number, sink: TrafficSink): () => void {
  const stream = manager.watchTraffic({ session, interceptId, bodyBytes });
  let done = false;
  const finish = (err?: TpError): void => {
    if (done) return;
    done = true;
    sink.end(err);
  };
  stream.on('data', (e: TrafficEvent) => {
    if (!done) sink.next(e);
  });
  stream.on('end', () => finish());
  stream.on('error', (err: Error & { code?: number }) => {
    if (err.code === grpcStatus.UNIMPLEMENTED) {
      finish(
        new TpError('cluster', 'manager-too-old', 'the traffic-manager cannot show traffic: it is older than this client', {
          hint: 'replace the traffic-manager with this version: kubectl telepresence install (or helm upgrade to this release)',
        }),
      );
    } else {
      finish(fromServiceError(err));
    }
  });
  return () => {
    if (done) return;
    done = true;
    stream.cancel();
  };
}
