/**
 * The handlers of the extension's commands, free of any vscode import: each translates a click or
 * a palette entry into session calls and notifications. extension.ts registers them.
 */
import { TpError, type InterceptInfo } from '@telepresence-ts/core';
import type { CliLookup } from './cli-bundle.js';
import type { DebugIntegration } from './debug.js';
import type { FileStore, Host } from './host.js';
import { askInterceptSpec, askReplaceSpec, askWiretapSpec, interceptedMessage, replacedMessage, wiretappedMessage } from './intercept-flow.js';
import { OPEN_SETTINGS, SHOW_LOGS, reportError } from './notify.js';
import { OUTBOUND_SETTINGS_QUERY, outboundMissingMessage } from './outbound.js';
import type { Session } from './session.js';
import type { TreeNode } from './workloads-tree.js';

export const DEBUG = 'Debug';
export const OPEN_ENV_FILE = 'Open Environment File';

export interface CommandDeps {
  readonly host: Host;
  readonly session: Session;
  readonly debug: DebugIntegration;
  readonly files: FileStore;
  /** Installs the traffic-manager with the settings' kube flags, reporting progress lines. */
  readonly installManager: (progress: (line: string) => void) => Promise<void>;
  /**
   * The daemon's lookup of the CLI that outbound access needs, made again: what the warning says
   * when a connect got no outbound access.
   */
  readonly cliLookup: () => CliLookup;
}

export class Commands {
  readonly #deps: CommandDeps;

  constructor(deps: CommandDeps) {
    this.#deps = deps;
  }

  async connect(): Promise<void> {
    const { host, session } = this.#deps;
    try {
      const status = await host.withProgress('Connecting to the cluster', () => session.connect());
      host.log(`connected to ${status.context} (namespace ${status.namespace}, traffic-manager v${status.managerVersion})`);
      if (session.outboundMissing) {
        // Connected for intercepts only, the daemon having found no CLI of this version.
        const message = outboundMissingMessage(this.#deps.cliLookup());
        host.log(message);
        const choice = await host.showMessage('warning', message, [OPEN_SETTINGS, SHOW_LOGS]);
        if (choice === SHOW_LOGS) host.showLog();
        else if (choice === OPEN_SETTINGS) await host.openSettings(OUTBOUND_SETTINGS_QUERY);
      }
    } catch (err: unknown) {
      if (err instanceof TpError && err.code === 'manager-not-installed') {
        // The welcome view offers the install; say so once, without a dialog to dismiss.
        host.log(`${err.message}; the Telepresence view offers to install it`);
        return;
      }
      await reportError(host, 'Cannot connect', err, () => this.connect());
    }
  }

  async disconnect(): Promise<void> {
    try {
      await this.#deps.session.disconnect();
      this.#deps.host.log('disconnected');
    } catch (err: unknown) {
      await reportError(this.#deps.host, 'Cannot disconnect', err);
    }
  }

  async installManager(): Promise<void> {
    const { host } = this.#deps;
    try {
      await host.withProgress('Installing the traffic-manager', (report) => this.#deps.installManager(report));
      host.log('traffic-manager installed');
    } catch (err: unknown) {
      await reportError(host, 'Cannot install the traffic-manager', err, () => this.installManager());
      return;
    }
    await this.connect();
  }

  /** Intercept… on a workload or one of its ports. */
  async intercept(node: TreeNode | undefined): Promise<void> {
    const { host, session } = this.#deps;
    try {
      const w = node?.workload;
      if (w === undefined) {
        throw new TpError('user', 'no-workload', 'Intercept… needs a workload', { hint: 'right-click a workload or a port in the Telepresence view' });
      }
      const taken = new Set(session.intercepts.map((ii) => ii.spec?.localPort ?? 0));
      const spec = await askInterceptSpec(host, w, node?.port, taken);
      if (spec === undefined) return;
      // The daemon writes the environment file (one that reports `remote.envFile` does).
      const envFile = await this.#deps.files.pathFor(`${w.name}-${w.namespace}.env`);
      const ii = await host.withProgress(`Intercepting ${w.name}`, (report) => session.intercept(spec, report, envFile));
      host.log(interceptedMessage(ii));
      await this.#offerNext(ii);
    } catch (err: unknown) {
      await reportError(host, 'Cannot intercept', err, () => this.intercept(node));
    }
  }

  /** Wiretap… on a workload or one of its ports: a copy of its traffic to a local port. */
  async wiretap(node: TreeNode | undefined): Promise<void> {
    const { host, session } = this.#deps;
    try {
      const w = node?.workload;
      if (w === undefined) {
        throw new TpError('user', 'no-workload', 'Wiretap… needs a workload', { hint: 'right-click a workload or a port in the Telepresence view' });
      }
      const taken = new Set(session.intercepts.map((ii) => ii.spec?.localPort ?? 0));
      const spec = await askWiretapSpec(host, w, node?.port, taken);
      if (spec === undefined) return;
      const ii = await host.withProgress(`Wiretapping ${w.name}`, (report) => session.intercept(spec, report));
      host.log(wiretappedMessage(ii));
      await host.showMessage('info', wiretappedMessage(ii), []);
    } catch (err: unknown) {
      await reportError(host, 'Cannot wiretap', err, () => this.wiretap(node));
    }
  }

  /** Replace… on a workload: its container stops in the cluster and its ports come here. */
  async replace(node: TreeNode | undefined): Promise<void> {
    const { host, session } = this.#deps;
    try {
      const w = node?.workload;
      if (w === undefined) {
        throw new TpError('user', 'no-workload', 'Replace… needs a workload', { hint: 'right-click a workload in the Telepresence view' });
      }
      const spec = await askReplaceSpec(host, w);
      if (spec === undefined) return;
      const envFile = await this.#deps.files.pathFor(`${w.name}-${w.namespace}-replace.env`);
      const ii = await host.withProgress(`Replacing ${spec.containerName} of ${w.name}`, (report) => session.intercept(spec, report, envFile));
      host.log(replacedMessage(ii));
      await this.#offerNext(ii, replacedMessage(ii));
    } catch (err: unknown) {
      await reportError(host, 'Cannot replace', err, () => this.replace(node));
    }
  }

  async #offerNext(ii: InterceptInfo, message = interceptedMessage(ii)): Promise<void> {
    const choice = await this.#deps.host.showMessage('info', message, [DEBUG, OPEN_ENV_FILE]);
    if (choice === DEBUG) await this.#deps.debug.debugIntercept(ii);
    else if (choice === OPEN_ENV_FILE) await this.#deps.debug.openEnvironmentFile(ii);
  }

  /** Leave on an intercept of this daemon. */
  async leave(node: TreeNode | undefined): Promise<void> {
    const { host, session } = this.#deps;
    try {
      const name = node?.intercept?.spec?.name ?? (await this.#pickIntercept('Leave which intercept?'));
      if (name === undefined) return;
      await session.leave(name);
      host.log(`left intercept ${name}`);
    } catch (err: unknown) {
      await reportError(host, 'Cannot leave', err);
    }
  }

  /** Debug… on an intercept: choose a launch configuration and run it with the intercept. */
  async debug(node: TreeNode | undefined): Promise<void> {
    try {
      const ii = node?.intercept ?? this.#find(await this.#pickIntercept('Debug with which intercept?'));
      if (ii !== undefined) await this.#deps.debug.debugIntercept(ii);
    } catch (err: unknown) {
      await reportError(this.#deps.host, 'Cannot debug', err);
    }
  }

  async openEnvironmentFile(node: TreeNode | undefined): Promise<void> {
    try {
      const ii = node?.intercept ?? this.#find(await this.#pickIntercept('Environment of which intercept?'));
      if (ii !== undefined) await this.#deps.debug.openEnvironmentFile(ii);
    } catch (err: unknown) {
      await reportError(this.#deps.host, 'Cannot open the environment file', err);
    }
  }

  #find(name: string | undefined): InterceptInfo | undefined {
    return name === undefined ? undefined : this.#deps.session.intercepts.find((ii) => ii.spec?.name === name);
  }

  async #pickIntercept(title: string): Promise<string | undefined> {
    const ours = this.#deps.session.intercepts;
    if (ours.length === 0) {
      throw new TpError('user', 'no-intercepts', 'there are no intercepts', { hint: 'right-click a workload in the Telepresence view and choose Intercept…' });
    }
    return this.#deps.host.pick(
      title,
      ours.map((ii) => ({ label: ii.spec?.name ?? ii.id, description: interceptedMessage(ii), value: ii.spec?.name ?? '' })),
    );
  }
}
