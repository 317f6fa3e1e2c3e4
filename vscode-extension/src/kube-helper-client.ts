/**
 * The extension's side of the Kubernetes helper: a KubeWatcher and an installer over the line
 * protocol of kube-helper-protocol.ts. The pipe is passed in (child-processes.ts spawns the real
 * helper; tests connect a fake).
 */
import { TpError, type KubeObject, type KubeWatcher, type WatchedKind, type WatchListener } from '@telepresence-ts/core';
import { fromWire, type HelperEvent, type HelperRequest } from './kube-helper-protocol.js';

/** Both ends of the helper's pipe. */
export interface HelperPipe {
  send(req: HelperRequest): void;
  /** Registers the receiver of the helper's events, and of its exit. */
  onEvent(listener: (event: HelperEvent) => void): void;
  onExit(listener: (reason: string) => void): void;
  /** Ends the helper (it exits when its input closes). */
  close(): void;
}

interface Pending {
  readonly progress: (line: string) => void;
  readonly resolve: () => void;
  readonly reject: (err: TpError) => void;
}

export class KubeHelperClient implements KubeWatcher {
  readonly #pipe: HelperPipe;
  #nextId = 1;
  readonly #watches = new Map<number, WatchListener<KubeObject>>();
  readonly #installs = new Map<number, Pending>();
  #exited: string | undefined;

  constructor(pipe: HelperPipe) {
    this.#pipe = pipe;
    pipe.onEvent((e) => this.#onEvent(e));
    pipe.onExit((reason) => {
      this.#exited = reason;
      const err = new TpError('internal', 'kube-helper-exited', `the extension's Kubernetes helper stopped: ${reason}`, { hint: 'reload the window; the Telepresence output has the details' });
      for (const w of this.#watches.values()) w.onError(err);
      for (const p of this.#installs.values()) p.reject(err);
      this.#watches.clear();
      this.#installs.clear();
    });
  }

  watch<T extends KubeObject>(kind: WatchedKind, namespace: string | undefined, listener: WatchListener<T>): () => void {
    const id = this.#nextId++;
    this.#watches.set(id, listener);
    this.#pipe.send({ op: 'watch', id, kind, namespace });
    return () => {
      if (this.#watches.delete(id) && this.#exited === undefined) this.#pipe.send({ op: 'stop', id });
    };
  }

  /** Installs the traffic-manager in `namespace`, reporting progress lines. */
  install(namespace: string, progress: (line: string) => void): Promise<void> {
    if (this.#exited !== undefined) {
      return Promise.reject(new TpError('internal', 'kube-helper-exited', `the extension's Kubernetes helper stopped: ${this.#exited}`));
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#installs.set(id, { progress, resolve, reject });
      this.#pipe.send({ op: 'install', id, namespace });
    });
  }

  close(): void {
    this.#watches.clear();
    this.#pipe.close();
  }

  #onEvent(e: HelperEvent): void {
    const watch = this.#watches.get(e.id);
    if (watch !== undefined) {
      if ('objects' in e) watch.onObjects(e.objects);
      else if ('error' in e) watch.onError(fromWire(e.error));
      return;
    }
    const pending = this.#installs.get(e.id);
    if (pending === undefined) return;
    if ('progress' in e) {
      pending.progress(e.progress);
    } else if ('done' in e) {
      this.#installs.delete(e.id);
      pending.resolve();
    } else if ('error' in e) {
      this.#installs.delete(e.id);
      pending.reject(fromWire(e.error));
    }
  }
}
