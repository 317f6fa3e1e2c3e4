import { type TpError, type KubeObject } from '@telepresence-ts/core';
import t from 'tap';
import { KubeHelperClient, type HelperPipe } from '../src/kube-helper-client.js';
import type { HelperEvent, HelperRequest } from '../src/kube-helper-protocol.js';

/** A pipe whose requests the test reads and whose events and exit the test sends. */
class FakePipe implements HelperPipe {
  readonly sent: HelperRequest[] = [];
  closed = 0;
  #event: (e: HelperEvent) => void = () => undefined;
  #exit: (reason: string) => void = () => undefined;
  send(req: HelperRequest): void {
    this.sent.push(req);
  }
  onEvent(listener: (e: HelperEvent) => void): void {
    this.#event = listener;
  }
  onExit(listener: (reason: string) => void): void {
    this.#exit = listener;
  }
  close(): void {
    this.closed++;
  }
  emit(e: HelperEvent): void {
    this.#event(e);
  }
  exit(reason: string): void {
    this.#exit(reason);
  }
}

function recorder() {
  const seen: Array<readonly KubeObject[] | TpError> = [];
  return { seen, listener: { onObjects: (o: readonly KubeObject[]) => seen.push(o), onError: (e: TpError) => seen.push(e) } };
}

t.test('a watch is a request with an id; its objects and errors reach only its listener', (t) => {
  const pipe = new FakePipe();
  const client = new KubeHelperClient(pipe);
  const a = recorder();
  const b = recorder();
  client.watch('Deployment', 'shop', a.listener);
  client.watch('Namespace', undefined, b.listener);
  t.same(pipe.sent, [
    { op: 'watch', id: 1, kind: 'Deployment', namespace: 'shop' },
    { op: 'watch', id: 2, kind: 'Namespace', namespace: undefined },
  ]);
  pipe.emit({ id: 1, objects: [{ metadata: { name: 'web' } }] });
  pipe.emit({ id: 2, error: { category: 'config', code: 'kube-forbidden', message: 'no', hint: 'ask' } });
  t.same(a.seen, [[{ metadata: { name: 'web' } }]]);
  t.equal(b.seen.length, 1);
  t.match(b.seen[0], { category: 'config', code: 'kube-forbidden', message: 'no', hint: 'ask' });
  t.end();
});

t.test('stopping a watch tells the helper once, and later events for it are dropped', (t) => {
  const pipe = new FakePipe();
  const client = new KubeHelperClient(pipe);
  const a = recorder();
  const stop = client.watch('Service', 'shop', a.listener);
  stop();
  stop();
  pipe.emit({ id: 1, objects: [] });
  t.same(pipe.sent.slice(1), [{ op: 'stop', id: 1 }]);
  t.same(a.seen, []);
  t.end();
});

t.test('install streams progress and resolves on done, rejects on error', async (t) => {
  const pipe = new FakePipe();
  const client = new KubeHelperClient(pipe);
  const lines: string[] = [];
  const ok = client.install('tp-system', (l) => lines.push(l));
  pipe.emit({ id: 1, progress: 'applying' });
  pipe.emit({ id: 1, done: true });
  await ok;
  t.same(lines, ['applying']);
  const failed = client.install('tp-system', () => undefined);
  pipe.emit({ id: 2, error: { category: 'cluster', code: 'install-timeout', message: 'slow' } });
  await t.rejects(failed, { code: 'install-timeout' });
  t.same(pipe.sent.map((r) => r.op), ['install', 'install']);
});

t.test('a helper that exits fails every watch and install, and later installs at once', async (t) => {
  const pipe = new FakePipe();
  const client = new KubeHelperClient(pipe);
  const a = recorder();
  client.watch('Deployment', 'shop', a.listener);
  const pending = client.install('tp-system', () => undefined);
  pipe.exit('exit status 1');
  await t.rejects(pending, { code: 'kube-helper-exited', message: /exit status 1/ });
  t.match(a.seen, [{ code: 'kube-helper-exited' }]);
  await t.rejects(client.install('tp-system', () => undefined), { code: 'kube-helper-exited' });
  client.close();
  t.equal(pipe.closed, 1);
});
