import t from 'tap';
import {
  findCondition,
  formatConditions,
  isNodeReady,
  isPodReady,
  readyEndpointAddresses,
  type Pod,
} from '../src/k8s-objects.js';

const ready = { type: 'Ready', status: 'True' as const };
const notReady = { type: 'Ready', status: 'False' as const, reason: 'KubeletNotReady', message: 'CNI not initialised' };

t.test('findCondition', async (t) => {
  t.equal(findCondition([notReady, ready], 'Ready'), notReady, 'the first of its type');
  t.equal(findCondition(undefined, 'Ready'), undefined);
});

t.test('isNodeReady', async (t) => {
  t.equal(isNodeReady({ metadata: { name: 'n' }, status: { conditions: [{ type: 'MemoryPressure', status: 'False' }, ready] } }), true);
  t.equal(isNodeReady({ metadata: { name: 'n' }, status: { conditions: [notReady] } }), false);
  t.equal(isNodeReady({ metadata: { name: 'n' } }), false, 'no status yet');
});

const podCases: Array<[string, Pod, boolean]> = [
  ['running and ready', { metadata: { name: 'p' }, status: { phase: 'Running', conditions: [ready] } }, true],
  ['running, not ready', { metadata: { name: 'p' }, status: { phase: 'Running', conditions: [notReady] } }, false],
  ['pending', { metadata: { name: 'p' }, status: { phase: 'Pending', conditions: [ready] } }, false],
  [
    'terminating',
    { metadata: { name: 'p', deletionTimestamp: '2025-01-01T00:00:00Z' }, status: { phase: 'Running', conditions: [ready] } },
    false,
  ],
  ['no status', { metadata: { name: 'p' } }, false],
];
for (const [name, pod, want] of podCases) {
  t.test(`isPodReady: ${name}`, async (t) => {
    t.equal(isPodReady(pod), want);
  });
}

t.test('readyEndpointAddresses', async (t) => {
  t.same(
    readyEndpointAddresses([
      {
        metadata: { name: 's1' },
        endpoints: [
          { addresses: ['10.0.0.1'], conditions: { ready: true } },
          { addresses: ['10.0.0.2'], conditions: { ready: false } },
          // A missing ready condition means ready ("unknown state ... should be interpreted as ready").
          { addresses: ['10.0.0.3'] },
        ],
      },
      { metadata: { name: 's2' } },
    ]),
    ['10.0.0.1', '10.0.0.3'],
  );
});

t.test('formatConditions', async (t) => {
  t.equal(formatConditions([ready, notReady]), 'Ready=True, Ready=False (KubeletNotReady: CNI not initialised)');
  t.equal(formatConditions(undefined), '(no conditions)');
});
