import t from 'tap';
import { engineArgs } from '../../src/network/engine.js';

t.test('the engine is told whom to become, unless its owner is root', async (t) => {
  const base = { command: '/opt/tp/bin/tp-netstack', device: 'tpts0', mtu: 65000, flowSocket: '/run/flows.sock' };
  t.strictSame(engineArgs({ ...base, uid: 1000, gid: 1001 }), ['--device', 'tpts0', '--mtu', '65000', '--flows', '/run/flows.sock', '--run-as', '1000:1001']);
  t.strictSame(engineArgs({ ...base, uid: 0, gid: 0 }), ['--device', 'tpts0', '--mtu', '65000', '--flows', '/run/flows.sock']);
});
