import t, { type Test } from 'tap';
import { TpError } from '../../src/errors.js';
import {
  neverInjectedSelected,
  parseAgentLogLevel,
  parseInstallFlags,
  parseLabelSelector,
  parseNodeSelector,
  parseResources,
  parseTolerations,
  parseWebhookFailurePolicy,
  parseWebhookTimeout,
  quantityValue,
  type InstallFlags,
} from '../../src/install/options.js';

const NS = 'tp-system';

/** Runs `f` and returns the TpError it throws (failing the test when it throws none or another kind). */
function refusal(t: Test, f: () => unknown): TpError | undefined {
  try {
    f();
  } catch (err: unknown) {
    if (err instanceof TpError) return err;
    t.fail(`threw a non-TpError: ${String(err)}`);
    return undefined;
  }
  t.fail('accepted');
  return undefined;
}

t.test('quantities: their exact values', async (t) => {
  const cases: Array<[string, bigint, bigint]> = [
    ['100m', 1n, 10n],
    ['0.1', 1n, 10n],
    ['1', 1n, 1n],
    ['1.5', 3n, 2n],
    ['.5', 1n, 2n],
    ['2.', 2n, 1n],
    ['128Mi', 128n * 1024n * 1024n, 1n],
    ['1Gi', 1073741824n, 1n],
    ['1G', 1_000_000_000n, 1n],
    ['1k', 1000n, 1n],
    ['1E', 10n ** 18n, 1n],
    ['1e3', 1000n, 1n],
    ['1E-3', 1n, 1000n],
    ['+5', 5n, 1n],
    ['500u', 1n, 2000n],
  ];
  for (const [text, num, den] of cases) {
    t.test(text, async (t) => {
      const v = quantityValue(text);
      t.ok(v !== undefined, 'a quantity');
      if (v !== undefined) t.equal(v.num * den, num * v.den, `${text} = ${num}/${den}`);
    });
  }
  for (const text of ['', 'abc', '1.2.3', '1KB', '1 Gi', '1e', 'Mi', '1mi', '--1']) {
    t.test(`not a quantity: ${JSON.stringify(text)}`, async (t) => {
      t.equal(quantityValue(text), undefined);
    });
  }
});

t.test('resources: kubectl set resources\' name=quantity lists', async (t) => {
  t.strictSame(parseResources('manager', ['cpu=100m,memory=64Mi'], ['memory=128Mi']), { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '128Mi' } });
  t.strictSame(parseResources('manager', ['cpu=100m', ' memory = 64Mi ']), { requests: { cpu: '100m', memory: '64Mi' } }, 'repeated flags add up; spaces are dropped');
  t.strictSame(parseResources('injector', [], ['cpu=1,ephemeral-storage=1Gi']), { limits: { cpu: '1', 'ephemeral-storage': '1Gi' } });
  t.strictSame(parseResources('manager', ['cpu=0.1'], ['cpu=100m']), { requests: { cpu: '0.1' }, limits: { cpu: '100m' } }, 'a request equal to its limit, written otherwise');
  t.equal(parseResources('manager'), undefined, 'no flags, no resources');
});

t.test('resources: bad forms are refused, naming the flag and the fix', async (t) => {
  const cases: Array<{ name: string; requests?: string[]; limits?: string[]; message: RegExp }> = [
    { name: 'no quantity', requests: ['cpu'], message: /^--manager-requests "cpu": "cpu" has no "=quantity"$/ },
    { name: 'an unknown resource', requests: ['mem=64Mi'], message: /"mem" is not one of cpu, memory, ephemeral-storage/ },
    { name: 'not a quantity', limits: ['memory=64MB'], message: /^--manager-limits "memory=64MB": memory=64MB: "64MB" is not a Kubernetes quantity$/ },
    { name: 'negative', requests: ['cpu=-1'], message: /cpu=-1 is negative/ },
    { name: 'millibytes of memory', limits: ['memory=128m'], message: /memory=128m is not a whole number of bytes \(m means thousandths: 128Mi or 128M was probably meant\)/ },
    { name: 'given twice', requests: ['cpu=1', 'cpu=2'], message: /cpu is given twice \(1 and 2\)/ },
    { name: 'an empty item', requests: ['cpu=1,'], message: /an empty item/ },
    { name: 'a request above its limit', requests: ['cpu=500m'], limits: ['cpu=0.25'], message: /^--manager-requests cpu=500m is above --manager-limits cpu=0.25: Kubernetes refuses a request above its limit$/ },
    { name: 'memory above its limit in other units', requests: ['memory=1G'], limits: ['memory=900Mi'], message: /memory=1G is above --manager-limits memory=900Mi/ },
  ];
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const err = refusal(t, () => parseResources('manager', c.requests, c.limits));
      t.equal(err?.category, 'user');
      t.equal(err?.code, 'bad-resources');
      t.match(err?.message, c.message);
      t.match(err?.hint, /--manager-(requests|limits) /, 'the hint shows the flag with a value');
    });
  }
});

t.test("the agent's resources: the same form, its own flags named in errors", async (t) => {
  t.strictSame(parseResources('agent', ['cpu=50m'], ['memory=256Mi']), { requests: { cpu: '50m' }, limits: { memory: '256Mi' } });
  const cases: Array<{ requests?: string[]; limits?: string[]; message: RegExp; hint: RegExp }> = [
    { requests: ['gpu=1'], message: /^--agent-requests "gpu=1": "gpu" is not one of cpu, memory, ephemeral-storage$/, hint: /--agent-requests cpu=100m,memory=128Mi/ },
    { limits: ['memory=256m'], message: /^--agent-limits "memory=256m": memory=256m is not a whole number of bytes/, hint: /--agent-limits cpu=100m/ },
    { requests: ['memory=512Mi'], limits: ['memory=256Mi'], message: /^--agent-requests memory=512Mi is above --agent-limits memory=256Mi/, hint: /--agent-requests memory=256Mi/ },
  ];
  for (const c of cases) {
    const err = refusal(t, () => parseInstallFlags({ agentRequests: c.requests, agentLimits: c.limits }, NS));
    t.equal(err?.code, 'bad-resources');
    t.match(err?.message, c.message);
    t.match(err?.hint, c.hint);
  }
});

t.test("the agents' log level: one of core's levels, any case", async (t) => {
  t.equal(parseAgentLogLevel('debug'), 'debug');
  t.equal(parseAgentLogLevel(' WARN '), 'warn');
  for (const text of ['verbose', '', 'warning']) {
    const err = refusal(t, () => parseAgentLogLevel(text));
    t.equal(err?.category, 'user');
    t.equal(err?.code, 'bad-log-level');
    t.match(err?.message, `--agent-log-level ${JSON.stringify(text)}: not a log level`);
    t.equal(err?.hint, 'pass one of debug, info, warn, error, as in --agent-log-level debug');
  }
});

t.test('node selector: key=value labels, repeated or comma-separated', async (t) => {
  t.strictSame(parseNodeSelector(['kubernetes.io/os=linux', 'pool=tools,zone=a']), { 'kubernetes.io/os': 'linux', pool: 'tools', zone: 'a' });
  t.strictSame(parseNodeSelector(['empty=']), { empty: '' }, 'an empty value is a label value');
  t.equal(parseNodeSelector([]), undefined);
  const cases: Array<[string, string, RegExp]> = [
    ['no value', 'linux', /"linux" has no "=value"/],
    ['a bad key', 'Example.com/os=linux', /prefix "Example.com" is not a DNS subdomain/],
    ['a bad value', 'os=linux!', /"linux!" is not a label value/],
    ['a value too long', `os=${'a'.repeat(64)}`, /is not a label value: at most 63/],
    ['a key given two values', 'os=linux,os=windows', /os is given twice \(linux and windows\), which no node matches/],
  ];
  for (const [name, value, message] of cases) {
    t.test(name, async (t) => {
      const err = refusal(t, () => parseNodeSelector([value]));
      t.equal(err?.code, 'bad-node-selector');
      t.match(err?.message, `--node-selector ${JSON.stringify(value)}: `);
      t.match(err?.message, message);
      t.match(err?.hint, /--node-selector kubernetes.io\/os=linux/);
    });
  }
});

t.test('tolerations: in the form of the taint they tolerate', async (t) => {
  const cases: Array<[string, object]> = [
    ['dedicated=tools:NoSchedule', { key: 'dedicated', operator: 'Equal', value: 'tools', effect: 'NoSchedule' }],
    ['node.example.com/spot:NoExecute', { key: 'node.example.com/spot', operator: 'Exists', effect: 'NoExecute' }],
    ['dedicated=tools', { key: 'dedicated', operator: 'Equal', value: 'tools' }],
    ['dedicated', { key: 'dedicated', operator: 'Exists' }],
    ['gpu=:PreferNoSchedule', { key: 'gpu', operator: 'Equal', value: '', effect: 'PreferNoSchedule' }],
  ];
  for (const [text, want] of cases) {
    t.test(text, async (t) => {
      t.strictSame(parseTolerations([text]), [want]);
    });
  }
  t.test('several, repeated or comma-separated', async (t) => {
    t.equal(parseTolerations(['a:NoSchedule,b:NoExecute', 'c=d:NoSchedule'])?.length, 3);
    t.equal(parseTolerations([]), undefined);
  });
});

t.test('tolerations: bad forms are refused, naming the flag and the fix', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['dedicated=tools:NoSchedul', /"NoSchedul" is not a taint effect$/],
    ['dedicated=tools:noschedule', /"noschedule" is not a taint effect \(effects are case-sensitive: NoSchedule\)/],
    ['dedicated=tools:', /"" is not a taint effect/],
    [':NoSchedule', /the key is empty/],
    ['dedicated=to ols:NoSchedule', /"to ols" is not a label value/],
    ['a,,b', /an empty item/],
  ];
  for (const [text, message] of cases) {
    t.test(text, async (t) => {
      const err = refusal(t, () => parseTolerations([text]));
      t.equal(err?.code, 'bad-toleration');
      t.match(err?.message, `--toleration ${JSON.stringify(text)}: `);
      t.match(err?.message, message);
      t.match(err?.hint, /key=value:Effect or key:Effect .*NoSchedule, PreferNoSchedule, NoExecute, as in --toleration dedicated=tools:NoSchedule/);
    });
  }
});

t.test('webhook failure policy: Ignore or Fail', async (t) => {
  t.equal(parseWebhookFailurePolicy('Ignore'), 'Ignore');
  t.equal(parseWebhookFailurePolicy('Fail'), 'Fail');
  const wrongCase = refusal(t, () => parseWebhookFailurePolicy('fail'));
  t.equal(wrongCase?.code, 'bad-webhook-failure-policy');
  t.equal(wrongCase?.message, '--webhook-failure-policy "fail": not a failure policy (policies are case-sensitive)');
  t.equal(wrongCase?.hint, 'pass --webhook-failure-policy Fail');
  const unknown = refusal(t, () => parseWebhookFailurePolicy('Never'));
  t.equal(unknown?.message, '--webhook-failure-policy "Never": not a failure policy');
  t.match(unknown?.hint, /^pass Ignore or Fail: /);
});

t.test('webhook timeout: whole seconds, 1 to 30', async (t) => {
  t.equal(parseWebhookTimeout('1'), 1);
  t.equal(parseWebhookTimeout('30'), 30);
  t.equal(parseWebhookTimeout('10'), 10);
  for (const [text, why] of [
    ['0', 'outside the 1 to 30 seconds the API server allows a webhook'],
    ['31', 'outside the 1 to 30 seconds the API server allows a webhook'],
    ['2.5', 'not a whole number of seconds'],
    ['10s', 'not a whole number of seconds'],
    ['', 'not a whole number of seconds'],
    ['-1', 'not a whole number of seconds'],
  ] as const) {
    t.test(JSON.stringify(text), async (t) => {
      const err = refusal(t, () => parseWebhookTimeout(text));
      t.equal(err?.code, 'bad-webhook-timeout');
      t.equal(err?.message, `--webhook-timeout ${JSON.stringify(text)}: ${why}`);
      t.equal(err?.hint, 'pass whole seconds from 1 to 30, as in --webhook-timeout 10');
    });
  }
});

t.test("label selectors: kubectl's syntax, as kubectl turns it into a LabelSelector", async (t) => {
  const cases: Array<[string, object]> = [
    ['env=dev', { matchLabels: { env: 'dev' } }],
    ['env==dev', { matchLabels: { env: 'dev' } }],
    ['env!=prod', { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] }],
    ['team in (a,b)', { matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] }],
    ['team notin ( a , b )', { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['a', 'b'] }] }],
    ['example.com/telepresence', { matchExpressions: [{ key: 'example.com/telepresence', operator: 'Exists' }] }],
    ['!legacy', { matchExpressions: [{ key: 'legacy', operator: 'DoesNotExist' }] }],
    [
      'env=dev, team in (a,b), !legacy',
      { matchLabels: { env: 'dev' }, matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }, { key: 'legacy', operator: 'DoesNotExist' }] },
    ],
  ];
  for (const [text, want] of cases) {
    t.test(text, async (t) => {
      t.strictSame(parseLabelSelector(text), want);
    });
  }
});

t.test('label selectors: bad forms are refused, naming the flag and the fix', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /an empty selector \(leave the flag out for every namespace\)/],
    ['env=dev,,team=a', /an empty requirement/],
    ['env=dev,', /an empty requirement/],
    ['team in (a,b', /its parentheses do not pair up/],
    ['team in ((a))', /its parentheses do not pair up/],
    ['team in ()', /team in \(\) has no values/],
    ['team in a', /"team in a" is not a requirement/],
    ['replicas>3', /> and < select nodes, not namespaces/],
    ['env=dev,env=prod', /env is required to be both dev and prod, which no namespace is/],
    ['Env.Example/x=1', /prefix "Env.Example" is not a DNS subdomain/],
    ['env=not ok', /is not a requirement/],
    ['env in (dev,not ok)', /"not ok" is not a label value/],
  ];
  for (const [text, message] of cases) {
    t.test(JSON.stringify(text), async (t) => {
      const err = refusal(t, () => parseLabelSelector(text));
      t.equal(err?.code, 'bad-namespace-selector');
      t.match(err?.message, `--injectable-namespaces ${JSON.stringify(text)}: `);
      t.match(err?.message, message);
      t.match(err?.hint, /as in --injectable-namespaces 'env=dev,team in \(a,b\),!legacy'/);
    });
  }
});

t.test('a selector asking for kube-system or the manager namespace by name is refused', async (t) => {
  const refused: Array<[string, string]> = [
    ['kubernetes.io/metadata.name=tp-system', 'tp-system'],
    ['kubernetes.io/metadata.name in (dev,kube-system)', 'kube-system'],
  ];
  for (const [text, namespace] of refused) {
    t.test(text, async (t) => {
      const err = refusal(t, () => parseInstallFlags({ injectableNamespaces: text }, NS));
      t.equal(err?.code, 'bad-namespace-selector');
      t.match(err?.message, `selects namespace ${namespace}, where agents are never injected (kube-system and the manager's namespace, tp-system)`);
      t.match(err?.hint, /kube-system and tp-system are left out whatever the selector says/);
    });
  }
  for (const text of ['kubernetes.io/metadata.name notin (kube-system)', 'kubernetes.io/metadata.name=dev', 'kubernetes.io/metadata.name in (dev,staging)']) {
    t.test(`allowed: ${text}`, async (t) => {
      t.equal(neverInjectedSelected(parseLabelSelector(text), NS), undefined);
    });
  }
  t.test('another manager namespace', async (t) => {
    t.equal(neverInjectedSelected({ matchLabels: { 'kubernetes.io/metadata.name': 'tp-system' } }, 'tp-other'), undefined, "tp-system is not tp-other's own");
    t.equal(neverInjectedSelected({ matchLabels: { 'kubernetes.io/metadata.name': 'tp-other' } }, 'tp-other'), 'tp-other');
  });
});

t.test('parseInstallFlags: only the options whose flags were given', async (t) => {
  t.strictSame(parseInstallFlags({}, NS), {});
  t.strictSame(parseInstallFlags({ managerRequests: [], nodeSelector: [], tolerations: [] }, NS), {}, 'empty repeatable flags set nothing');
  const flags: InstallFlags = {
    managerRequests: ['cpu=100m,memory=64Mi'],
    managerLimits: ['memory=128Mi'],
    injectorRequests: ['cpu=50m'],
    agentRequests: ['memory=64Mi,cpu=50m'],
    agentLimits: ['memory=256Mi'],
    agentLogLevel: 'debug',
    nodeSelector: ['kubernetes.io/os=linux'],
    tolerations: ['dedicated=tools:NoSchedule'],
    webhookFailurePolicy: 'Fail',
    webhookTimeout: '10',
    injectableNamespaces: 'team=a,env in (dev)',
  };
  // The values of test/release/chart.test.ts's custom chart values.
  t.strictSame(parseInstallFlags(flags, NS), {
    managerResources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '128Mi' } },
    injectorResources: { requests: { cpu: '50m' } },
    agentResources: { requests: { memory: '64Mi', cpu: '50m' }, limits: { memory: '256Mi' } },
    agentLogLevel: 'debug',
    nodeSelector: { 'kubernetes.io/os': 'linux' },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'tools', effect: 'NoSchedule' }],
    webhookFailurePolicy: 'Fail',
    webhookTimeoutSeconds: 10,
    injectableNamespaces: { matchLabels: { team: 'a' }, matchExpressions: [{ key: 'env', operator: 'In', values: ['dev'] }] },
  });
});
