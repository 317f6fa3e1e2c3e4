import t from 'tap';
import { networkDaemonLogPath, networkSocketPath } from '../../src/network/paths.js';

t.test('the socket lives in root\'s /run unless the environment moves it', async (t) => {
  t.equal(networkSocketPath({}), '/run/telepresence-ts/network.sock');
  t.equal(networkSocketPath({ TELEPRESENCE_NETWORK_SOCKET: '' }), '/run/telepresence-ts/network.sock');
  t.equal(networkSocketPath({ TELEPRESENCE_NETWORK_SOCKET: '/tmp/ns1/network.sock' }), '/tmp/ns1/network.sock');
});

t.test('the log lives in the cache folder of the home given (root\'s by default)', async (t) => {
  t.equal(networkDaemonLogPath('/root'), '/root/.cache/telepresence-ts/network-daemon.log');
});
