/**
 * The extension's Kubernetes helper (dist/kube-helper.js): watches and installs for the extension,
 * from a plain Node process (see kube-helper-protocol.ts for why). Requests arrive on stdin, events
 * leave on stdout, one JSON object per line; the helper exits when stdin closes, so it never
 * outlives the extension host.
 */
import {
  DEFAULT_INSTALL_TIMEOUT_MS,
  DEFAULT_MANAGER_NAMESPACE,
  VERSION,
  createKubeApi,
  createKubeWatcher,
  defaultImages,
  install,
  systemClock,
  toTpError,
  type KubeWatcher,
} from '@telepresence-ts/core';
import { lineSplitter, slim, toWire, type HelperArgs, type HelperEvent, type HelperRequest } from './kube-helper-protocol.js';

const flags = JSON.parse(process.argv[2] ?? '{}') as HelperArgs;
const send = (event: HelperEvent): void => {
  process.stdout.write(`${JSON.stringify(event)}\n`);
};
const stops = new Map<number, () => void>();
let watcher: Promise<KubeWatcher> | undefined;

function handle(req: HelperRequest): void {
  switch (req.op) {
    case 'watch':
      watcher ??= createKubeWatcher(flags);
      watcher.then(
        (w) => {
          stops.set(
            req.id,
            w.watch(req.kind, req.namespace, {
              onObjects: (objects) => send({ id: req.id, objects: objects.map(slim) }),
              onError: (err) => send({ id: req.id, error: toWire(err) }),
            }),
          );
        },
        (err: unknown) => send({ id: req.id, error: toWire(toTpError(err)) }),
      );
      return;
    case 'stop':
      stops.get(req.id)?.();
      stops.delete(req.id);
      return;
    case 'install': {
      const images = defaultImages(VERSION);
      createKubeApi(flags)
        .then((kube) =>
          install(
            { kube, clock: systemClock, progress: (line) => send({ id: req.id, progress: line }) },
            {
              namespace: req.namespace || DEFAULT_MANAGER_NAMESPACE,
              managerImage: images.manager,
              injectorImage: images.injector,
              agentImage: images.agent,
              wait: true,
              timeoutMs: DEFAULT_INSTALL_TIMEOUT_MS,
              dryRun: false,
            },
          ),
        )
        .then(
          () => send({ id: req.id, done: true }),
          (err: unknown) => send({ id: req.id, error: toWire(toTpError(err)) }),
        );
      return;
    }
  }
}

process.stdin.setEncoding('utf8');
process.stdin.on(
  'data',
  lineSplitter((line) => {
    try {
      handle(JSON.parse(line) as HelperRequest);
    } catch (err: unknown) {
      process.stderr.write(`kube-helper: bad request ${line}: ${toTpError(err).message}\n`);
    }
  }),
);
process.stdin.on('end', () => process.exit(0));
