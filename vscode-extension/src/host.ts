/**
 * The parts of the VS Code window the extension's logic uses, behind a narrow port (as
 * vscode-kubernetes-tools does with its Host). vscode-host.ts is the real one; tests use fakes.
 */
export type MessageLevel = 'info' | 'warning' | 'error';

export interface PickItem<T> {
  readonly label: string;
  readonly description?: string;
  readonly value: T;
}

export interface AskTextOptions {
  readonly title: string;
  readonly prompt: string;
  readonly value?: string;
  readonly placeHolder?: string;
  /** An error text for a bad value, undefined for a good one. */
  readonly validate?: (value: string) => string | undefined;
}

export interface Host {
  showInformationMessage(message: string): void;
  showErrorMessage(message: string): void;
  /** A notification with buttons; resolves with the chosen one (undefined when dismissed). */
  showMessage(level: MessageLevel, message: string, actions: readonly string[]): Promise<string | undefined>;
  /** A quick pick; undefined when cancelled. */
  pick<T>(title: string, items: ReadonlyArray<PickItem<T>>): Promise<T | undefined>;
  /** An input box; undefined when cancelled. */
  askText(options: AskTextOptions): Promise<string | undefined>;
  /** Runs `task` under a progress notification that shows each reported line. */
  withProgress<T>(title: string, task: (report: (line: string) => void) => Promise<T>): Promise<T>;
  /** Appends a line to the Telepresence output channel. */
  log(line: string): void;
  showLog(): void;
  openFile(path: string): Promise<void>;
  /** Opens the Settings editor filtered by `query`. */
  openSettings(query: string): Promise<void>;
}

/** A launch configuration as launch.json holds it. */
export interface LaunchConfig {
  readonly type: string;
  readonly request: string;
  readonly name: string;
  readonly [key: string]: unknown;
}

/** The debugger and the workspace's launch configurations. */
export interface DebugHost {
  /** The configurations of the workspace's launch.json files. */
  launchConfigurations(): readonly LaunchConfig[];
  /** Starts a debug session; false when VS Code could not start it. */
  startDebugging(config: LaunchConfig): Promise<boolean>;
}

/** The extension's settings (`telepresence.*`). */
export interface Settings {
  readonly kubeconfig: string;
  readonly context: string;
  readonly namespace: string;
  readonly managerNamespace: string;
  /** Leave the intercept a debug session used when the session ends. */
  readonly leaveInterceptOnDebugEnd: boolean;
  /** Outbound access: reach the cluster's Services, pods and DNS names while connected. */
  readonly outbound: boolean;
  /** CIDRs routed to the cluster besides its own subnets. */
  readonly alsoProxy: readonly string[];
  /** CIDRs never routed to the cluster, even inside its subnets. */
  readonly neverProxy: readonly string[];
  /** The CLI whose network daemon gives outbound access; empty: `kubectl-telepresence` on PATH. */
  readonly cliPath: string;
}

/** Where the extension writes environment files. */
export interface FileStore {
  /** Writes `text` to `name` in the extension's storage folder; returns the file's path. */
  write(name: string, text: string): Promise<string>;
  /** The path of `name` in the storage folder, which exists afterwards (for others to write to). */
  pathFor(name: string): Promise<string>;
}
