/**
 * The Helm chart in cluster/chart/, generated from the functions that make the objects `install`
 * applies: each function is called with placeholders (the release namespace, the images, the
 * options from the values), and the objects are written out as YAML with Helm expressions in
 * the placeholders' places. So `install` and the chart cannot drift apart; `npm run chart` writes
 * the files, and a test fails when the committed ones are stale.
 */
import {
  DEFAULT_AGENT_LOG_LEVEL,
  DEFAULT_AGENT_RESOURCES,
  DEFAULT_IMAGE_REGISTRY,
  ENV,
  formatResourceList,
  IMAGE_NAMES,
  INSTALL_RESOURCE_NAMES,
  KEY_PREFIX,
  LABEL_SELECTOR_OPERATORS,
  LOG_LEVELS,
  MANAGER_REMOVE_AGENTS_MODE,
  MIN_WEBHOOK_TIMEOUT_SECONDS,
  QUANTITY_PATTERN,
  REMOVE_AGENTS_WAIT_SECONDS,
  RESOURCE_NAMES,
  REGISTRY_PATTERN,
  WEBHOOK_FAILURE_POLICIES,
} from '@telepresence-ts/core';
import type { V1Deployment, V1Job } from '@kubernetes/client-node';
import { injectorDnsNames, VALIDITY_YEARS } from '@telepresence-ts/core/install-certs';
import {
  baseManifests,
  injectorDeployment,
  injectorTlsSecret,
  installLabels,
  managerDeployment,
  MAX_WEBHOOK_TIMEOUT_SECONDS,
  NAMESPACE_NAME_LABEL,
  neverInjectedNamespaces,
  WEBHOOK_DEFAULTS,
  webhookConfiguration,
  type InstallOptions,
} from '@telepresence-ts/core/install-manifests';

/** The chart's name, as `helm install <release> <chart>` and Chart.yaml know it. */
export const CHART_NAME = 'telepresence-ts';

/** On the TLS Secret: when its certificates expire, in seconds since the epoch (Helm cannot read a certificate). */
export const TLS_NOT_AFTER_ANNOTATION = `${KEY_PREFIX}tls-not-after`;

/** New certificates are made on the upgrade that finds the old ones expiring within this many days. */
export const TLS_RENEW_DAYS = 30;

/** The pre-delete hook Job that removes the agents before `helm uninstall` deletes anything. */
export const REMOVE_AGENTS_HOOK_NAME = `${RESOURCE_NAMES.manager}-${MANAGER_REMOVE_AGENTS_MODE}`;

/**
 * The hook Job's activeDeadlineSeconds: the mode's own wait, plus a minute for pulling the image,
 * starting and removing the entries. The mode exits 0 when its wait runs out, so this only ends a
 * pod that never started or hangs; it stays below `helm uninstall`'s default --timeout of 5 min.
 */
export const REMOVE_AGENTS_HOOK_DEADLINE_SECONDS = REMOVE_AGENTS_WAIT_SECONDS + 60;

const TEMPLATE = Symbol('helm template');

/** A scalar the chart computes: a Helm expression in place of a string or number. */
interface Scalar {
  readonly [TEMPLATE]: 'scalar';
  readonly expr: string;
  readonly quote: boolean;
}

/** A map or list from the values; its key is left out when it is empty, as install leaves out an unset option. */
interface Block {
  readonly [TEMPLATE]: 'block';
  readonly expr: string;
}

/** List items from the values, appended to the items install always has. */
interface Items {
  readonly [TEMPLATE]: 'items';
  readonly expr: string;
}

type Placeholder = Scalar | Block | Items;

const scalar = (expr: string, quote = true): Scalar => ({ [TEMPLATE]: 'scalar', expr, quote });
const block = (expr: string): Block => ({ [TEMPLATE]: 'block', expr });
const items = (expr: string): Items => ({ [TEMPLATE]: 'items', expr });

/** Stands for the release namespace inside strings (`traffic-manager-<ns>`); no Kubernetes name has `@`. */
const NS = '@release-namespace@';

function placeholder(v: unknown): Placeholder | undefined {
  return typeof v === 'object' && v !== null && TEMPLATE in v ? (v as Placeholder) : undefined;
}

/** Passes a placeholder where a manifest function expects a value of type T. */
function as<T>(p: Placeholder): T {
  return p as unknown as T;
}

/** A string as a YAML scalar: plain when YAML reads it back as the same string, quoted otherwise. */
function yamlString(s: string): string {
  if (s === NS) return '{{ .Release.Namespace | quote }}';
  // Namespaces are DNS labels: nothing in one needs escaping inside double quotes.
  if (s.includes(NS)) return JSON.stringify(s).split(NS).join('{{ .Release.Namespace }}');
  const plain = /^[A-Za-z_/][A-Za-z0-9._/-]*$/.test(s) && !/^(true|false|yes|no|on|off|null|y|n|~)$/i.test(s);
  return plain ? s : JSON.stringify(s);
}

function yamlScalar(v: unknown): string {
  const p = placeholder(v);
  if (p?.[TEMPLATE] === 'scalar') return `{{ ${p.expr}${p.quote ? ' | quote' : ''} }}`;
  if (typeof v === 'string') return yamlString(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  throw new Error(`cannot write ${JSON.stringify(v)} as a YAML scalar`);
}

const isCollection = (v: unknown): v is object => typeof v === 'object' && v !== null && placeholder(v) === undefined;

function yamlMap(obj: object, indent: number): string[] {
  const pad = ' '.repeat(indent);
  const lines: string[] = [];
  for (const [key, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    const k = yamlString(key);
    const p = placeholder(v);
    if (p?.[TEMPLATE] === 'block') {
      lines.push(`${pad}{{- with ${p.expr} }}`, `${pad}${k}:{{ toYaml . | nindent ${indent + 2} }}`, `${pad}{{- end }}`);
    } else if (Array.isArray(v)) {
      lines.push(v.length === 0 ? `${pad}${k}: []` : `${pad}${k}:`, ...yamlList(v, indent + 2));
    } else if (isCollection(v)) {
      const inner = yamlMap(v, indent + 2);
      lines.push(...(inner.length === 0 ? [`${pad}${k}: {}`] : [`${pad}${k}:`, ...inner]));
    } else {
      lines.push(`${pad}${k}: ${yamlScalar(v)}`);
    }
  }
  return lines;
}

function yamlList(list: readonly unknown[], indent: number): string[] {
  const pad = ' '.repeat(indent);
  const lines: string[] = [];
  for (const v of list) {
    const p = placeholder(v);
    if (p?.[TEMPLATE] === 'items') {
      lines.push(`${pad}{{- with ${p.expr} }}`, `${pad}{{- toYaml . | nindent ${indent} }}`, `${pad}{{- end }}`);
    } else if (Array.isArray(v)) {
      throw new Error('lists of lists are not written');
    } else if (isCollection(v)) {
      const [first = '', ...rest] = yamlMap(v, indent + 2);
      if (!first.startsWith(`${pad}  `) || first.includes('{{-')) throw new Error('a list item must start with a plain key');
      lines.push(`${pad}- ${first.slice(indent + 2)}`, ...rest);
    } else {
      lines.push(`${pad}- ${yamlScalar(v)}`);
    }
  }
  return lines;
}

/** One object as a YAML document. */
export function toYamlTemplate(obj: object): string {
  return `${yamlMap(obj, 0).join('\n')}\n`;
}

/** A Helm `list` of the strings, the release namespace among them as `.Release.Namespace`. */
function helmList(strings: readonly string[], root: string): string {
  return `(list ${strings.map((s) => (s === NS ? `${root}.Release.Namespace` : `(printf ${JSON.stringify(s.split(NS).join('%s'))}${s.includes(NS) ? ` ${root}.Release.Namespace` : ''})`)).join(' ')})`;
}

const image = (name: string): Scalar => scalar(`include "${CHART_NAME}.image" (list . ${JSON.stringify(name)})`);

/** The options install takes, each standing for the value the chart reads it from. */
const OPTIONS: InstallOptions = {
  namespace: NS,
  managerImage: as(image(IMAGE_NAMES.manager)),
  injectorImage: as(image(IMAGE_NAMES.injector)),
  agentImage: as(image(IMAGE_NAMES.agent)),
  managerResources: as(block('.Values.manager.resources')),
  injectorResources: as(block('.Values.injector.resources')),
  agentLogLevel: as(scalar('.Values.agent.logLevel')),
  // Set in the Deployments' environment by agentResourcesFromValues: install writes them as JSON.
  nodeSelector: as(block('.Values.nodeSelector')),
  tolerations: as(block('.Values.tolerations')),
  webhookFailurePolicy: as(scalar('.Values.webhook.failurePolicy')),
  webhookTimeoutSeconds: as(scalar('.Values.webhook.timeoutSeconds', false)),
  injectableNamespaces: { matchLabels: as(block('.Values.namespaceSelector.matchLabels')), matchExpressions: [as(items('.Values.namespaceSelector.matchExpressions'))] },
};

/**
 * The Deployment with the agents' resources taken from the values: install writes them into the
 * environment as JSON (agentResourcesEnvValue), which the chart writes with toJson, whose sorted
 * keys are that JSON's canonical order.
 */
function agentResourcesFromValues(deployment: V1Deployment): V1Deployment {
  // Changed in place (a new object per call): a copy by structuredClone would lose the placeholders' symbol.
  for (const c of deployment.spec?.template?.spec?.containers ?? []) {
    for (const e of c.env ?? []) {
      if (e.name === ENV.agentResources) e.value = as(scalar('.Values.agent.resources | default dict | toJson'));
    }
  }
  return deployment;
}

const GENERATED = `{{- /* Generated by \`npm run chart\` (cluster/src/chart/chart-gen.ts) from the objects \`kubectl telepresence install\` applies; do not edit. */}}`;

const TLS_DAYS = VALIDITY_YEARS * 365;

/**
 * The template helpers. `validate` refuses, at render time, what install's flags refuse before
 * they touch the cluster: a webhook timeout above the API server's maximum, and a namespace
 * selector asking for a namespace agents never go into (core's neverInjectedSelected, the same
 * rule over the same fields; test/release/chart.test.ts checks that the two agree).
 */
function helpers(): string {
  const never = helmList(neverInjectedNamespaces(NS), '$');
  const dnsNames = helmList(injectorDnsNames(RESOURCE_NAMES.injector, NS), '.root');
  const caName = `printf "telepresence-ts agent-injector CA (%s)" .root.Release.Namespace`;
  return `${GENERATED}

{{- /* The tag of the three images: the chart's appVersion unless set. */}}
{{- define "${CHART_NAME}.tag" -}}
{{- if kindIs "invalid" .Values.tag }}{{ .Chart.AppVersion }}{{ else }}{{ .Values.tag }}{{ end }}
{{- end }}

{{- /* <registry>/<image>:<tag>, as install's defaultImages makes it; called with (list $ "<image>"). */}}
{{- define "${CHART_NAME}.image" -}}
{{- $root := index . 0 }}
{{- printf "%s/%s:%s" (regexReplaceAll "/+$" $root.Values.registry "") (index . 1) (include "${CHART_NAME}.tag" $root) }}
{{- end }}

{{- /* The checks that involve more than one value or a value's meaning (types and ranges are in values.schema.json). */}}
{{- define "${CHART_NAME}.validate" -}}
{{- if and (not (kindIs "invalid" .Values.tag)) (eq (toString .Values.tag) "") }}
{{- fail "tag is empty: leave it unset for the chart's appVersion, or set the tag the images were pushed with (--set tag=<version>)" }}
{{- end }}
{{- if gt (int .Values.webhook.timeoutSeconds) ${MAX_WEBHOOK_TIMEOUT_SECONDS} }}
{{- fail (printf "webhook.timeoutSeconds is %v, above the API server's maximum of ${MAX_WEBHOOK_TIMEOUT_SECONDS}: set it to 1 to ${MAX_WEBHOOK_TIMEOUT_SECONDS} seconds" .Values.webhook.timeoutSeconds) }}
{{- end }}
{{- $selector := .Values.namespaceSelector | default dict }}
{{- range $never := ${never} }}
{{- if eq (toString (index ($selector.matchLabels | default dict) "${NAMESPACE_NAME_LABEL}")) $never }}
{{- fail (printf "namespaceSelector.matchLabels selects namespace %s, where agents are never injected (kube-system and the release namespace): select other namespaces" $never) }}
{{- end }}
{{- range $selector.matchExpressions }}
{{- if and (eq .key "${NAMESPACE_NAME_LABEL}") (eq .operator "In") (has $never (.values | default list)) }}
{{- fail (printf "namespaceSelector.matchExpressions requires namespace %s, where agents are never injected (kube-system and the release namespace): select other namespaces" $never) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- /*
The injector's CA and serving certificate, as YAML (ca, cert, key, notAfter): those of the Secret
from an earlier release (.existing, from lookup) while they are valid for more than ${TLS_RENEW_DAYS} days, so that
an upgrade keeps the Secret and the webhook's caBundle as they are; new ones otherwise, so that an
upgrade after they expired works again. The Secret records when they expire in annotation
${TLS_NOT_AFTER_ANNOTATION}; a Secret without it gets new ones.
*/}}
{{- define "${CHART_NAME}.tls" -}}
{{- $now := now | unixEpoch | int64 }}
{{- $existing := .existing | default dict }}
{{- $data := $existing.data | default dict }}
{{- $annotations := ($existing.metadata | default dict).annotations | default dict }}
{{- $notAfter := index $annotations "${TLS_NOT_AFTER_ANNOTATION}" | default "0" | int64 }}
{{- if and (index $data "ca.crt") (index $data "tls.crt") (index $data "tls.key") (gt $notAfter (add $now ${TLS_RENEW_DAYS * 86400})) }}
ca: {{ index $data "ca.crt" | b64dec | quote }}
cert: {{ index $data "tls.crt" | b64dec | quote }}
key: {{ index $data "tls.key" | b64dec | quote }}
notAfter: {{ $notAfter | quote }}
{{- else }}
{{- $ca := genCA (${caName}) ${TLS_DAYS} }}
{{- $dnsNames := ${dnsNames} }}
{{- $cert := genSignedCert (first $dnsNames) nil $dnsNames ${TLS_DAYS} $ca }}
ca: {{ $ca.Cert | quote }}
cert: {{ $cert.Cert | quote }}
key: {{ $cert.Key | quote }}
notAfter: {{ add $now ${TLS_DAYS * 86400} | quote }}
{{- end }}
{{- end }}
`;
}

/** The TLS Secret and the webhook configuration: one file, since both need the one CA made per render. */
function webhookTemplate(): string {
  const tls = { caCert: as<string>(scalar('$tls.ca')), cert: as<string>(scalar('$tls.cert')), key: as<string>(scalar('$tls.key')) };
  const secret = injectorTlsSecret(OPTIONS, tls);
  const withExpiry = { ...secret, metadata: { ...secret.metadata, annotations: { [TLS_NOT_AFTER_ANNOTATION]: scalar('$tls.notAfter') } } };
  const webhook = webhookConfiguration(OPTIONS, '');
  const [hook] = webhook.webhooks ?? [];
  if (hook === undefined) throw new Error('the webhook configuration has no webhook');
  // install encodes the CA it made; here the CA is made at render time.
  hook.clientConfig = { ...hook.clientConfig, caBundle: as(scalar('$tls.ca | b64enc')) };
  return [
    GENERATED,
    `{{- include "${CHART_NAME}.validate" . }}`,
    `{{- $tls := include "${CHART_NAME}.tls" (dict "root" . "existing" (lookup "v1" "Secret" .Release.Namespace ${JSON.stringify(RESOURCE_NAMES.injectorTlsSecret)})) | fromYaml }}`,
    toYamlTemplate(withExpiry).trimEnd(),
    '---',
    toYamlTemplate(webhook),
  ].join('\n');
}

/**
 * The pre-delete hook (chart-only: `uninstall --everything` removes the agents through the
 * traffic-manager itself): a Job that runs the traffic-manager image's `remove-agents` mode while
 * the traffic-manager still runs and evicts. Its pod is the traffic-manager's pod (image,
 * ServiceAccount, resources, securityContext, nodeSelector, tolerations) without what serves
 * (ports, probe, environment), so the values that shape the one shape the other. Its labels name
 * it apart: the traffic-manager's Service must not select it. A failed Job stays (for its log)
 * until the next uninstall replaces it.
 */
function removeAgentsHook(): V1Job {
  const template = managerDeployment(OPTIONS).spec?.template;
  const [manager, ...others] = template?.spec?.containers ?? [];
  if (template?.spec === undefined || manager === undefined || others.length > 0) throw new Error('the traffic-manager Deployment is not one container');
  const { ports: _ports, readinessProbe: _probe, env: _env, name: _name, image, ...container } = manager;
  const name = REMOVE_AGENTS_HOOK_NAME;
  const labels = installLabels(NS, name);
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name,
      namespace: NS,
      labels,
      annotations: {
        'helm.sh/hook': 'pre-delete',
        'helm.sh/hook-weight': '0',
        // A Job from an earlier uninstall that failed is replaced; one that succeeded goes at once.
        'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded',
      },
    },
    spec: {
      // One try: the mode ends its own wait; a second pod would only wait again.
      backoffLimit: 0,
      activeDeadlineSeconds: REMOVE_AGENTS_HOOK_DEADLINE_SECONDS,
      template: {
        metadata: { labels },
        spec: { ...template.spec, restartPolicy: 'Never', containers: [{ name, image, args: [MANAGER_REMOVE_AGENTS_MODE], ...container }] },
      },
    },
  };
}

function valuesYaml(): string {
  return `# Values of the ${CHART_NAME} chart. Every default is what \`kubectl telepresence install\` applies.
# The traffic-manager and the agent-injector go into the release namespace (helm's --namespace):
# it plays the part of install's --manager-namespace, and the cluster-scoped objects carry its name.

# The registry (host[:port][/path]) of the three images: <registry>/${IMAGE_NAMES.manager},
# <registry>/${IMAGE_NAMES.injector} and <registry>/${IMAGE_NAMES.agent} (install's --registry).
registry: ${yamlString(DEFAULT_IMAGE_REGISTRY)}
# The images' tag; unset (null), the chart's appVersion, as install uses the CLI's version.
# The traffic-agent the injector adds to pods is <registry>/${IMAGE_NAMES.agent}:<tag> too.
tag: null

# Render the release namespace too, labelled as install labels it: for tools that apply the
# rendered objects (Argo CD, Flux, helm template | kubectl apply). \`helm install\` stores the
# release in that namespace before it creates anything, so it needs the namespace to exist:
# helm install --create-namespace, with this left false.
createNamespace: false

# Container resources of the traffic-manager and of the agent-injector.
manager:
  resources: {}
injector:
  resources: {}

# The traffic-agent the injector adds to the pods of workloads.
agent:
  # Its log level: debug, info, warn or error (install's --agent-log-level).
  logLevel: ${DEFAULT_AGENT_LOG_LEVEL}
  # Its container's resources: requests and limits of ${INSTALL_RESOURCE_NAMES.join(', ')} (install's
  # --agent-requests and --agent-limits). Empty: requests of ${formatResourceList(DEFAULT_AGENT_RESOURCES.requests)}, no limits;
  # set, they replace that default as a whole. A change restarts every pod with an agent.
  resources: {}

# Where the two Deployments' pods may run.
nodeSelector: {}
tolerations: []

# The agent-injector's MutatingWebhookConfiguration.
webhook:
  # Ignore: a broken injector never stops pods from being created; Fail: no pod is created
  # without the injector's answer.
  failurePolicy: ${WEBHOOK_DEFAULTS.failurePolicy}
  # Seconds the API server waits for the injector, 1 to ${MAX_WEBHOOK_TIMEOUT_SECONDS}.
  timeoutSeconds: ${WEBHOOK_DEFAULTS.timeoutSeconds}

# The namespaces agents may be injected into (matchLabels, matchExpressions). kube-system and the
# release namespace never are, whatever this selects; empty: every other namespace.
namespaceSelector: {}
`;
}

const stringMap = { type: 'object', additionalProperties: { type: 'string' } };
// The agents' resources are checked as install's flags check them, but for a request above its
// limit, which the traffic-manager and the agent-injector refuse when they start.
// Each name as a property rather than by propertyNames, whose errors do not say where the name is.
const quantity = { type: ['string', 'number'], pattern: QUANTITY_PATTERN.replace('[+-]?', '[+]?') };
const quantities = { type: 'object', properties: Object.fromEntries(INSTALL_RESOURCE_NAMES.map((n) => [n, quantity])), additionalProperties: false };
const agentResources = { type: 'object', properties: { limits: quantities, requests: quantities }, additionalProperties: false };
const resources = {
  type: 'object',
  properties: { limits: { type: 'object' }, requests: { type: 'object' }, claims: { type: 'array' } },
  additionalProperties: false,
};

function valuesSchema(): unknown {
  return {
    $schema: 'https://json-schema.org/draft-07/schema#',
    type: 'object',
    additionalProperties: false,
    properties: {
      // install strips trailing slashes before it checks a registry; so does the chart.
      registry: { type: 'string', pattern: REGISTRY_PATTERN.replace(/\$$/, '/*$'), description: 'host[:port][/path] of the images, no scheme and no tag' },
      tag: { type: ['string', 'null'] },
      createNamespace: { type: 'boolean' },
      manager: { type: 'object', properties: { resources }, additionalProperties: false },
      injector: { type: 'object', properties: { resources }, additionalProperties: false },
      agent: { type: 'object', properties: { logLevel: { enum: LOG_LEVELS }, resources: agentResources }, additionalProperties: false },
      nodeSelector: stringMap,
      tolerations: { type: 'array', items: { type: 'object' } },
      webhook: {
        type: 'object',
        additionalProperties: false,
        properties: {
          failurePolicy: { enum: WEBHOOK_FAILURE_POLICIES },
          // The maximum is checked in the templates, with a message saying why.
          timeoutSeconds: { type: 'integer', minimum: MIN_WEBHOOK_TIMEOUT_SECONDS },
        },
      },
      namespaceSelector: {
        type: 'object',
        additionalProperties: false,
        properties: {
          matchLabels: stringMap,
          matchExpressions: {
            type: 'array',
            items: {
              type: 'object',
              required: ['key', 'operator'],
              additionalProperties: false,
              properties: {
                key: { type: 'string' },
                operator: { enum: LABEL_SELECTOR_OPERATORS },
                values: { type: 'array', items: { type: 'string' } },
              },
            },
          },
        },
      },
    },
  };
}

/** Every file of the chart, by its path under the chart's folder. */
export function chartFiles(version: string): Record<string, string> {
  const files: Record<string, string> = {
    'Chart.yaml': `apiVersion: v2
name: ${CHART_NAME}
description: The traffic-manager and agent-injector of telepresence-ts, as \`kubectl telepresence install\` installs them.
type: application
version: ${version}
appVersion: ${JSON.stringify(version)}
`,
    'values.yaml': valuesYaml(),
    'values.schema.json': `${JSON.stringify(valuesSchema(), null, 2)}\n`,
    'templates/_helpers.tpl': helpers(),
  };
  for (const obj of [...baseManifests(OPTIONS), agentResourcesFromValues(managerDeployment(OPTIONS)), agentResourcesFromValues(injectorDeployment(OPTIONS))]) {
    const kind = (obj.kind ?? '').toLowerCase();
    const name = obj.metadata?.name?.split(`-${NS}`).join('') ?? '';
    const body = toYamlTemplate(obj);
    files[`templates/${kind}${kind === 'namespace' ? '' : `-${name}`}.yaml`] =
      kind === 'namespace' ? `${GENERATED}\n{{- if .Values.createNamespace }}\n${body}{{- end }}\n` : `${GENERATED}\n${body}`;
  }
  files['templates/agent-injector-webhook.yaml'] = webhookTemplate();
  files[`templates/job-${REMOVE_AGENTS_HOOK_NAME}.yaml`] = `${GENERATED}\n${toYamlTemplate(removeAgentsHook())}`;
  return files;
}
