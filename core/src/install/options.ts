/**
 * `install`'s flags for the options the Helm chart also takes as values (docs/helm.md has the
 * table): parsed from the command line's text into InstallOptions fields, and checked before
 * anything in the cluster changes. install applies its objects one at a time, so a value the API
 * server refuses halfway would leave half an installation; these checks refuse it first.
 */
import { LOG_LEVELS, type LogLevel } from '../contracts.js';
import { TpError } from '../errors.js';
import type { V1LabelSelector, V1ResourceRequirements, V1Toleration } from '../kube/kube-types.js';
import { compareQuantities, INSTALL_RESOURCE_NAMES, quantityProblem, quantityValue } from '../resources.js';
import { MAX_WEBHOOK_TIMEOUT_SECONDS, NAMESPACE_NAME_LABEL, neverInjectedNamespaces, type InstallOptions } from './manifests.js';

export { INSTALL_RESOURCE_NAMES, QUANTITY_PATTERN, quantityValue } from '../resources.js';

type LabelSelectorRequirement = NonNullable<V1LabelSelector['matchExpressions']>[number];

/** What the API server does with a pod when the webhook does not answer: create it as it is, or refuse it. */
export type WebhookFailurePolicy = NonNullable<InstallOptions['webhookFailurePolicy']>;

/** Every WebhookFailurePolicy, listed once here and checked against InstallOptions' type by `satisfies`. */
const FAILURE_POLICIES = { Ignore: true, Fail: true } satisfies Record<WebhookFailurePolicy, true>;

/** The failurePolicy values of a webhook (the chart's values.schema.json enumerates these too). */
export const WEBHOOK_FAILURE_POLICIES = Object.keys(FAILURE_POLICIES) as WebhookFailurePolicy[];

/** The API server refuses a webhook timeoutSeconds below 1. */
export const MIN_WEBHOOK_TIMEOUT_SECONDS = 1;

/** The operators of a namespace selector's matchExpressions (Gt and Lt are node selectors' only). */
export const LABEL_SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

/** The effects of a taint, and so of a toleration. */
export const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const;

/** The text of install's flags for these options, as the command line gave it; an unset flag is undefined or empty. */
export interface InstallFlags {
  readonly managerRequests?: readonly string[];
  readonly managerLimits?: readonly string[];
  readonly injectorRequests?: readonly string[];
  readonly injectorLimits?: readonly string[];
  readonly agentRequests?: readonly string[];
  readonly agentLimits?: readonly string[];
  readonly agentLogLevel?: string;
  readonly nodeSelector?: readonly string[];
  readonly tolerations?: readonly string[];
  readonly webhookFailurePolicy?: string;
  readonly webhookTimeout?: string;
  readonly injectableNamespaces?: string;
}

/** The InstallOptions fields the flags set; a field is absent when its flags were not given. */
export type InstallSettings = Pick<
  InstallOptions,
  'managerResources' | 'injectorResources' | 'agentResources' | 'agentLogLevel' | 'nodeSelector' | 'tolerations' | 'webhookFailurePolicy' | 'webhookTimeoutSeconds' | 'injectableNamespaces'
>;

function badFlag(code: string, flag: string, value: string, why: string, hint: string): TpError {
  return new TpError('user', code, `--${flag} ${JSON.stringify(value)}: ${why}`, { hint });
}

/** The comma-separated items of a repeatable flag, all its occurrences together. */
function items(values: readonly string[]): Array<{ raw: string; item: string }> {
  return values.flatMap((raw) => raw.split(',').map((item) => ({ raw, item: item.trim() })));
}

// Label keys and values, as Kubernetes validates them (apimachinery's IsQualifiedName and IsValidLabelValue).
const NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Why `key` is not a label key (`[prefix/]name`), or undefined when it is one. */
function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (key === '') return 'the key is empty';
  if (prefix !== undefined && !(prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix))) {
    return `its prefix ${JSON.stringify(prefix)} is not a DNS subdomain (lower-case letters, digits, "-" and ".")`;
  }
  if (!(name.length <= 63 && NAME_PART.test(name))) {
    return `${JSON.stringify(name)} is not a label name: at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Why `value` is not a label value, or undefined when it is one (the empty value is one). */
function labelValueProblem(value: string): string | undefined {
  return value.length <= 63 && LABEL_VALUE.test(value)
    ? undefined
    : `${JSON.stringify(value)} is not a label value: at most 63 letters, digits, "-", "_" and ".", starting and ending with a letter or digit`;
}

const RESOURCES_HINT = (flag: string): string =>
  `give name=quantity pairs of ${INSTALL_RESOURCE_NAMES.join(', ')}, as in --${flag} cpu=100m,memory=128Mi (Mi, Gi: powers of 1024; m: thousandths)`;

/** `name=quantity[,name=quantity]` of one `--<program>-requests` or `--<program>-limits` flag, every occurrence. */
function resourceList(flag: string, values: readonly string[]): Record<string, string> | undefined {
  const list: Record<string, string> = {};
  for (const { raw, item } of items(values)) {
    const fail = (why: string): TpError => badFlag('bad-resources', flag, raw, why, RESOURCES_HINT(flag));
    const eq = item.indexOf('=');
    if (eq < 0) throw fail(item === '' ? 'an empty item' : `${JSON.stringify(item)} has no "=quantity"`);
    const name = item.slice(0, eq).trim();
    const quantity = item.slice(eq + 1).trim();
    if (!(INSTALL_RESOURCE_NAMES as readonly string[]).includes(name)) throw fail(`${JSON.stringify(name)} is not one of ${INSTALL_RESOURCE_NAMES.join(', ')}`);
    const problem = quantityProblem(name, quantity);
    if (problem !== undefined) throw fail(problem);
    const earlier = list[name];
    if (earlier !== undefined && earlier !== quantity) throw fail(`${name} is given twice (${earlier} and ${quantity})`);
    list[name] = quantity;
  }
  return Object.keys(list).length === 0 ? undefined : list;
}

/**
 * A container's resources from its `--<program>-requests` and `--<program>-limits` flags, which take
 * what `kubectl set resources --requests/--limits` takes. A request above its limit is refused, as
 * the API server would refuse the Deployment (or, for the agent, the pod it is injected into).
 */
export function parseResources(program: 'manager' | 'injector' | 'agent', requests: readonly string[] = [], limits: readonly string[] = []): V1ResourceRequirements | undefined {
  const requestFlag = `${program}-requests`;
  const limitFlag = `${program}-limits`;
  const req = resourceList(requestFlag, requests);
  const lim = resourceList(limitFlag, limits);
  for (const [name, quantity] of Object.entries(req ?? {})) {
    const limit = lim?.[name];
    const value = quantityValue(quantity);
    const max = limit === undefined ? undefined : quantityValue(limit);
    if (value !== undefined && max !== undefined && compareQuantities(value, max) > 0) {
      throw new TpError('user', 'bad-resources', `--${requestFlag} ${name}=${quantity} is above --${limitFlag} ${name}=${limit ?? ''}: Kubernetes refuses a request above its limit`, {
        hint: `lower the request or raise the limit, as in --${requestFlag} ${name}=${limit ?? ''}`,
      });
    }
  }
  if (req === undefined && lim === undefined) return undefined;
  return { ...(req === undefined ? {} : { requests: req }), ...(lim === undefined ? {} : { limits: lim }) };
}

/** `--agent-log-level`: the log level of the traffic-agents injected into workloads. */
export function parseAgentLogLevel(text: string): LogLevel {
  const level = LOG_LEVELS.find((l) => l === text.trim().toLowerCase());
  if (level !== undefined) return level;
  throw badFlag('bad-log-level', 'agent-log-level', text, 'not a log level', `pass one of ${LOG_LEVELS.join(', ')}, as in --agent-log-level debug`);
}

/** `key=value[,key=value]` of every `--node-selector`: the node labels both Deployments' pods require. */
export function parseNodeSelector(values: readonly string[] = []): Record<string, string> | undefined {
  const selector: Record<string, string> = {};
  for (const { raw, item } of items(values)) {
    const fail = (why: string): TpError =>
      badFlag('bad-node-selector', 'node-selector', raw, why, 'give node labels as key=value, as in --node-selector kubernetes.io/os=linux (repeat the flag or separate with commas for more)');
    const eq = item.indexOf('=');
    if (eq < 0) throw fail(item === '' ? 'an empty item' : `${JSON.stringify(item)} has no "=value"`);
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    const problem = labelKeyProblem(key) ?? labelValueProblem(value);
    if (problem !== undefined) throw fail(problem);
    const earlier = selector[key];
    if (earlier !== undefined && earlier !== value) throw fail(`${key} is given twice (${earlier} and ${value}), which no node matches`);
    selector[key] = value;
  }
  return Object.keys(selector).length === 0 ? undefined : selector;
}

/**
 * Every `--toleration`, in the form of the taint it tolerates (`kubectl taint`'s): `key=value:Effect`
 * tolerates that taint (operator Equal), `key:Effect` a taint of that key whatever its value
 * (operator Exists); without `:Effect`, taints of every effect.
 */
export function parseTolerations(values: readonly string[] = []): V1Toleration[] | undefined {
  const tolerations: V1Toleration[] = [];
  for (const { raw, item } of items(values)) {
    const fail = (why: string): TpError =>
      badFlag(
        'bad-toleration',
        'toleration',
        raw,
        why,
        `give the taint to tolerate as key=value:Effect or key:Effect (any value), Effect one of ${TAINT_EFFECTS.join(', ')}, as in --toleration dedicated=tools:NoSchedule`,
      );
    if (item === '') throw fail('an empty item');
    const colon = item.indexOf(':');
    const keyValue = colon < 0 ? item : item.slice(0, colon);
    const effect = colon < 0 ? undefined : item.slice(colon + 1).trim();
    const eq = keyValue.indexOf('=');
    const key = (eq < 0 ? keyValue : keyValue.slice(0, eq)).trim();
    const value = eq < 0 ? undefined : keyValue.slice(eq + 1).trim();
    const problem = labelKeyProblem(key) ?? (value === undefined ? undefined : labelValueProblem(value));
    if (problem !== undefined) throw fail(problem);
    if (effect !== undefined && !(TAINT_EFFECTS as readonly string[]).includes(effect)) {
      const meant = TAINT_EFFECTS.find((e) => e.toLowerCase() === effect.toLowerCase());
      throw fail(`${JSON.stringify(effect)} is not a taint effect${meant === undefined ? '' : ` (effects are case-sensitive: ${meant})`}`);
    }
    tolerations.push({
      key,
      operator: value === undefined ? 'Exists' : 'Equal',
      ...(value === undefined ? {} : { value }),
      ...(effect === undefined ? {} : { effect }),
    });
  }
  return tolerations.length === 0 ? undefined : tolerations;
}

/** `--webhook-failure-policy`: Ignore or Fail, spelt as Kubernetes spells them. */
export function parseWebhookFailurePolicy(text: string): WebhookFailurePolicy {
  const policy = WEBHOOK_FAILURE_POLICIES.find((p) => p === text);
  if (policy !== undefined) return policy;
  const meant = WEBHOOK_FAILURE_POLICIES.find((p) => p.toLowerCase() === text.trim().toLowerCase());
  throw badFlag(
    'bad-webhook-failure-policy',
    'webhook-failure-policy',
    text,
    `not a failure policy${meant === undefined ? '' : ' (policies are case-sensitive)'}`,
    meant !== undefined
      ? `pass --webhook-failure-policy ${meant}`
      : `pass ${WEBHOOK_FAILURE_POLICIES.join(' or ')}: Ignore creates pods without an agent while the injector does not answer, Fail refuses them`,
  );
}

/** `--webhook-timeout`: whole seconds, in the range the API server accepts. */
export function parseWebhookTimeout(text: string): number {
  const seconds = /^\d{1,6}$/.test(text.trim()) ? Number(text) : undefined;
  if (seconds !== undefined && seconds >= MIN_WEBHOOK_TIMEOUT_SECONDS && seconds <= MAX_WEBHOOK_TIMEOUT_SECONDS) return seconds;
  const range = `${MIN_WEBHOOK_TIMEOUT_SECONDS} to ${MAX_WEBHOOK_TIMEOUT_SECONDS}`;
  throw badFlag(
    'bad-webhook-timeout',
    'webhook-timeout',
    text,
    seconds === undefined ? 'not a whole number of seconds' : `outside the ${range} seconds the API server allows a webhook`,
    `pass whole seconds from ${range}, as in --webhook-timeout 10`,
  );
}

/** The parts of a selector between its top-level commas (those in `in (a,b)` are the values'), or undefined when its parentheses do not pair. */
function requirements(text: string): string[] | undefined {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
    if (depth < 0 || depth > 1) return undefined;
  }
  parts.push(text.slice(start).trim());
  return depth === 0 ? parts : undefined;
}

const SELECTOR_HINT =
  'write a label selector as kubectl -l takes it, as in --injectable-namespaces \'env=dev,team in (a,b),!legacy\': key=value, key!=value, key in (v1,v2), key notin (v1,v2), key (has the label), !key (has not), joined by commas; quote it for the shell';

/**
 * A label selector in kubectl's syntax (`env=dev,team in (a,b),!legacy`) as a V1LabelSelector, the
 * way kubectl makes one (metav1.ParseToLabelSelector): `=` and `==` into matchLabels, the rest into
 * matchExpressions. `flag` names the flag in errors.
 */
export function parseLabelSelector(text: string, flag = 'injectable-namespaces'): V1LabelSelector {
  const fail = (why: string): TpError => badFlag('bad-namespace-selector', flag, text, why, SELECTOR_HINT);
  if (text.trim() === '') throw fail('an empty selector (leave the flag out for every namespace)');
  const parts = requirements(text);
  if (parts === undefined) throw fail('its parentheses do not pair up');
  const matchLabels: Record<string, string> = {};
  const matchExpressions: LabelSelectorRequirement[] = [];
  const checked = (key: string, values: string[]): void => {
    const problem = labelKeyProblem(key) ?? values.map(labelValueProblem).find((p) => p !== undefined);
    if (problem !== undefined) throw fail(problem);
  };
  for (const part of parts) {
    let m: RegExpExecArray | null;
    if (part === '') {
      throw fail('an empty requirement (two commas in a row, or one at an end)');
    } else if ((m = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(part)) !== null) {
      const [, key = '', op, list = ''] = m;
      const values = list.split(',').map((v) => v.trim());
      if (list.trim() === '') throw fail(`${key} ${op} () has no values`);
      checked(key, values);
      matchExpressions.push({ key, operator: op === 'in' ? 'In' : 'NotIn', values });
    } else if ((m = /^([^\s=!<>()]+)\s*(==|=|!=)\s*([^\s=!<>()]*)$/.exec(part)) !== null) {
      const [, key = '', op, value = ''] = m;
      checked(key, [value]);
      if (op === '!=') {
        matchExpressions.push({ key, operator: 'NotIn', values: [value] });
      } else {
        const earlier = matchLabels[key];
        if (earlier !== undefined && earlier !== value) throw fail(`${key} is required to be both ${earlier} and ${value}, which no namespace is`);
        matchLabels[key] = value;
      }
    } else if ((m = /^!\s*([^\s=!<>(),]+)$/.exec(part)) !== null) {
      const [, key = ''] = m;
      checked(key, []);
      matchExpressions.push({ key, operator: 'DoesNotExist' });
    } else if (/^[^\s=!<>(),]+$/.test(part)) {
      checked(part, []);
      matchExpressions.push({ key: part, operator: 'Exists' });
    } else if (/[<>]/.test(part)) {
      throw fail(`${JSON.stringify(part)}: > and < select nodes, not namespaces`);
    } else {
      throw fail(`${JSON.stringify(part)} is not a requirement`);
    }
  }
  return {
    ...(Object.keys(matchLabels).length === 0 ? {} : { matchLabels }),
    ...(matchExpressions.length === 0 ? {} : { matchExpressions }),
  };
}

/**
 * The namespace the selector asks for by name (label NAMESPACE_NAME_LABEL, in matchLabels or with
 * operator In) among those agents are never injected into, or undefined. Such a selector would
 * select nothing, or a namespace the webhook leaves out anyway: `install` and the chart refuse it.
 * The chart's `validate` template (cluster/src/chart/chart-gen.ts) applies this same rule to its
 * values at render time; test/release/chart.test.ts checks that the two agree.
 */
export function neverInjectedSelected(selector: V1LabelSelector, managerNamespace: string): string | undefined {
  for (const never of neverInjectedNamespaces(managerNamespace)) {
    if (selector.matchLabels?.[NAMESPACE_NAME_LABEL] === never) return never;
    if (selector.matchExpressions?.some((e) => e.key === NAMESPACE_NAME_LABEL && e.operator === 'In' && (e.values ?? []).includes(never))) return never;
  }
  return undefined;
}

/** `--injectable-namespaces`: a label selector of namespaces, refused when it asks for one agents never go into. */
export function parseInjectableNamespaces(text: string, managerNamespace: string): V1LabelSelector {
  const selector = parseLabelSelector(text);
  const never = neverInjectedSelected(selector, managerNamespace);
  if (never !== undefined) {
    throw badFlag(
      'bad-namespace-selector',
      'injectable-namespaces',
      text,
      `it selects namespace ${never}, where agents are never injected (kube-system and the manager's namespace, ${managerNamespace})`,
      `select the namespaces that may get agents, as in --injectable-namespaces env=dev; ${neverInjectedNamespaces(managerNamespace).join(' and ')} are left out whatever the selector says`,
    );
  }
  return selector;
}

/**
 * Every option install's flags set, parsed and checked: throws a `user` TpError naming the flag and
 * the form it takes at the first bad one. Call it before touching the cluster.
 */
export function parseInstallFlags(flags: InstallFlags, managerNamespace: string): InstallSettings {
  const managerResources = parseResources('manager', flags.managerRequests, flags.managerLimits);
  const injectorResources = parseResources('injector', flags.injectorRequests, flags.injectorLimits);
  const agentResources = parseResources('agent', flags.agentRequests, flags.agentLimits);
  const agentLogLevel = flags.agentLogLevel === undefined ? undefined : parseAgentLogLevel(flags.agentLogLevel);
  const nodeSelector = parseNodeSelector(flags.nodeSelector);
  const tolerations = parseTolerations(flags.tolerations);
  const webhookFailurePolicy = flags.webhookFailurePolicy === undefined ? undefined : parseWebhookFailurePolicy(flags.webhookFailurePolicy);
  const webhookTimeoutSeconds = flags.webhookTimeout === undefined ? undefined : parseWebhookTimeout(flags.webhookTimeout);
  const injectableNamespaces = flags.injectableNamespaces === undefined ? undefined : parseInjectableNamespaces(flags.injectableNamespaces, managerNamespace);
  return {
    ...(managerResources === undefined ? {} : { managerResources }),
    ...(injectorResources === undefined ? {} : { injectorResources }),
    ...(agentResources === undefined ? {} : { agentResources }),
    ...(agentLogLevel === undefined ? {} : { agentLogLevel }),
    ...(nodeSelector === undefined ? {} : { nodeSelector }),
    ...(tolerations === undefined ? {} : { tolerations }),
    ...(webhookFailurePolicy === undefined ? {} : { webhookFailurePolicy }),
    ...(webhookTimeoutSeconds === undefined ? {} : { webhookTimeoutSeconds }),
    ...(injectableNamespaces === undefined ? {} : { injectableNamespaces }),
  };
}
