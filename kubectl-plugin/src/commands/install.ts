import {
  checkRegistry,
  DEFAULT_AGENT_LOG_LEVEL,
  DEFAULT_AGENT_RESOURCES,
  DEFAULT_IMAGE_REGISTRY,
  DEFAULT_INSTALL_TIMEOUT_MS,
  defaultImages,
  formatResourceList,
  install,
  INSTALL_RESOURCE_NAMES,
  LOG_LEVELS,
  MAX_WEBHOOK_TIMEOUT_SECONDS,
  MIN_WEBHOOK_TIMEOUT_SECONDS,
  parseInstallFlags,
  TAINT_EFFECTS,
  WEBHOOK_DEFAULTS,
  type InstallResult,
  type InstallSettings,
} from '@telepresence-ts/core';
import type { CommandDeps } from '../command-deps.js';
import { managerNamespaceOption } from '../connection.js';
import type { GlobalOptions } from '../global-options.js';
import { print, progressTo } from '../output.js';
import { defineCommand, type AnyCommand } from './define.js';

interface InstallArgs extends GlobalOptions {
  'manager-namespace': string;
  registry: string | undefined;
  'manager-image': string | undefined;
  'injector-image': string | undefined;
  'agent-image': string | undefined;
  'manager-requests': string[] | undefined;
  'manager-limits': string[] | undefined;
  'injector-requests': string[] | undefined;
  'injector-limits': string[] | undefined;
  'agent-requests': string[] | undefined;
  'agent-limits': string[] | undefined;
  'node-selector': string[] | undefined;
  toleration: string[] | undefined;
  /** A list when given more than once. */
  'webhook-failure-policy': string | string[] | undefined;
  'webhook-timeout': string | string[] | undefined;
  'injectable-namespaces': string | string[] | undefined;
  'agent-log-level': string | string[] | undefined;
  wait: boolean;
  timeout: number;
  'dry-run': boolean;
}

export function formatInstallText(r: InstallResult, dryRun: boolean): string {
  if (dryRun) {
    return `Dry run: the API server accepted ${r.applied.length} objects for namespace ${r.namespace}\n`;
  }
  return `Traffic manager installed in namespace ${r.namespace} (${r.images.manager}, ${r.images.injector}; agents ${r.images.agent})\n`;
}

/** The options installed, for `--output json`: the webhook's and the agents' log level with their defaults, the others when given. */
export function installOptionsJson(s: InstallSettings) {
  return { webhookFailurePolicy: WEBHOOK_DEFAULTS.failurePolicy, webhookTimeoutSeconds: WEBHOOK_DEFAULTS.timeoutSeconds, agentLogLevel: DEFAULT_AGENT_LOG_LEVEL, ...s };
}

const RESOURCES = INSTALL_RESOURCE_NAMES.join(', ');

const resourceOption = (describe: string) => ({ type: 'string', array: true, requiresArg: true, describe }) as const;

/** The options the Helm chart also takes as values (docs/helm.md pairs them). */
const clusterOptions = {
  'manager-requests': resourceOption(`Resources reserved for the traffic-manager: name=quantity of ${RESOURCES}, comma-separated or repeated. Example: --manager-requests cpu=100m,memory=64Mi`),
  'manager-limits': resourceOption('The most the traffic-manager may use, in the same form. Example: --manager-limits memory=256Mi'),
  'injector-requests': resourceOption('Resources reserved for the agent-injector. Example: --injector-requests cpu=50m,memory=32Mi'),
  'injector-limits': resourceOption('The most the agent-injector may use. Example: --injector-limits memory=128Mi'),
  'agent-requests': resourceOption(
    `Resources reserved for the traffic-agent in each pod it is injected into, in the same form. Without either agent flag: ${formatResourceList(DEFAULT_AGENT_RESOURCES.requests)} and no limits; with one, the two flags are all the agent gets. Example: --agent-requests cpu=50m,memory=64Mi`,
  ),
  'agent-limits': resourceOption('The most each traffic-agent may use (default: no limits; a low one throttles or kills the workload\'s traffic). Example: --agent-limits memory=256Mi'),
  'agent-log-level': {
    type: 'string',
    requiresArg: true,
    describe: `Log level of the traffic-agents, ${LOG_LEVELS.join(', ')} (default ${DEFAULT_AGENT_LOG_LEVEL}); a change restarts the pods with an agent. Example: --agent-log-level debug`,
  },
  'node-selector': {
    type: 'string',
    array: true,
    requiresArg: true,
    describe: 'Run both pods only on nodes with this label, key=value; repeatable. Example: --node-selector kubernetes.io/os=linux',
  },
  toleration: {
    type: 'string',
    array: true,
    requiresArg: true,
    describe: `Let both pods run on nodes with this taint, written as kubectl taint writes it: key=value:Effect, key:Effect for any value, no :Effect for every effect (${TAINT_EFFECTS.join(', ')}); repeatable. Example: --toleration dedicated=tools:NoSchedule`,
  },
  'webhook-failure-policy': {
    type: 'string',
    requiresArg: true,
    describe: `When the agent-injector does not answer, Ignore creates new pods without an agent and Fail refuses them (default ${WEBHOOK_DEFAULTS.failurePolicy}). Example: --webhook-failure-policy Fail`,
  },
  'webhook-timeout': {
    type: 'string',
    requiresArg: true,
    describe: `Seconds the API server waits for the agent-injector, ${MIN_WEBHOOK_TIMEOUT_SECONDS} to ${MAX_WEBHOOK_TIMEOUT_SECONDS} (default ${WEBHOOK_DEFAULTS.timeoutSeconds}). Example: --webhook-timeout 10`,
  },
  'injectable-namespaces': {
    type: 'string',
    requiresArg: true,
    describe:
      "Inject agents only into the namespaces this label selector matches, written as kubectl -l takes it; kube-system and the manager's namespace never get agents. Example: --injectable-namespaces 'env=dev,team in (a,b),!legacy'",
  },
} as const;

/** The last of a flag given more than once (yargs makes a list of them), as for kubectl's flags. */
function lastOf(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.at(-1) : v;
}

/** `install`: the traffic-manager, agent-injector and webhook; re-running updates them in place. */
export function installCommand(deps: CommandDeps): AnyCommand {
  return defineCommand<InstallArgs>({
    command: 'install',
    describe: 'Install or upgrade the traffic-manager in the cluster',
    builder: (y) =>
      y
        .options({
          ...managerNamespaceOption,
          registry: {
            type: 'string',
            describe: `Registry (host[:port][/path]) to pull the three images from, tagged with this CLI's version (default ${DEFAULT_IMAGE_REGISTRY})`,
          },
          'manager-image': { type: 'string', describe: `traffic-manager image (default ${defaultImages(deps.version).manager})` },
          'injector-image': { type: 'string', describe: `agent-injector image (default ${defaultImages(deps.version).injector})` },
          'agent-image': { type: 'string', describe: `traffic-agent image (default ${defaultImages(deps.version).agent})` },
          wait: { type: 'boolean', default: true, describe: 'Wait for the Deployments to become available' },
          timeout: { type: 'number', default: DEFAULT_INSTALL_TIMEOUT_MS / 1000, describe: 'Seconds to wait' },
          'dry-run': { type: 'boolean', default: false, describe: 'Validate with the API server without changing anything' },
          ...clusterOptions,
        })
        .group(['manager-namespace', 'registry', 'manager-image', 'injector-image', 'agent-image', 'wait', 'timeout', 'dry-run'], 'Install:')
        .group(['manager-requests', 'manager-limits', 'injector-requests', 'injector-limits', 'node-selector', 'toleration'], 'Resources and scheduling of the traffic-manager and agent-injector:')
        .group(['webhook-failure-policy', 'webhook-timeout', 'injectable-namespaces'], 'Agent injection:')
        .group(['agent-requests', 'agent-limits', 'agent-log-level'], 'The traffic-agent injected into workloads:')
        .example('$0 install --registry registry.example.com/team', 'pull the images from your own registry')
        .example('$0 install --manager-requests cpu=100m,memory=64Mi --manager-limits memory=256Mi', 'reserve CPU and memory for the traffic-manager and cap its memory')
        .example('$0 install --node-selector pool=tools --toleration dedicated=tools:NoSchedule', 'run both on the nodes of pool tools, which are tainted for everything else')
        .example('$0 install --agent-log-level debug --agent-limits memory=256Mi', 'agents that log in detail, each capped at 256Mi of memory')
        .example("$0 install --injectable-namespaces 'env in (dev,staging)' --webhook-failure-policy Fail", 'agents only in dev and staging namespaces; no pod starts there without its agent')
        .epilogue(
          'Every option is checked before anything in the cluster changes. Re-running install applies the options given this time: one left out goes back to its default. The Helm chart in cluster/chart takes the same options as values (docs/helm.md).',
        ),
    handler: async (argv) => {
      // Checked before anything in the cluster changes.
      if (argv.registry !== undefined) checkRegistry(argv.registry);
      const namespace = argv['manager-namespace'];
      const settings = parseInstallFlags(
        {
          managerRequests: argv['manager-requests'],
          managerLimits: argv['manager-limits'],
          injectorRequests: argv['injector-requests'],
          injectorLimits: argv['injector-limits'],
          agentRequests: argv['agent-requests'],
          agentLimits: argv['agent-limits'],
          agentLogLevel: lastOf(argv['agent-log-level']),
          nodeSelector: argv['node-selector'],
          tolerations: argv.toleration,
          webhookFailurePolicy: lastOf(argv['webhook-failure-policy']),
          webhookTimeout: lastOf(argv['webhook-timeout']),
          injectableNamespaces: lastOf(argv['injectable-namespaces']),
        },
        namespace,
      );
      const images = defaultImages(deps.version, argv.registry);
      const kube = await deps.kube({ kubeconfig: argv.kubeconfig, context: argv.context });
      const result = await install(
        { kube, clock: deps.clock, progress: progressTo(deps.io) },
        {
          namespace,
          managerImage: argv['manager-image'] ?? images.manager,
          injectorImage: argv['injector-image'] ?? images.injector,
          agentImage: argv['agent-image'] ?? images.agent,
          ...settings,
          wait: argv.wait,
          timeoutMs: argv.timeout * 1000,
          dryRun: argv['dry-run'],
        },
      );
      print(deps.io, argv.output, { ...result, dryRun: argv['dry-run'], options: installOptionsJson(settings) }, () => formatInstallText(result, argv['dry-run']));
    },
  });
}
