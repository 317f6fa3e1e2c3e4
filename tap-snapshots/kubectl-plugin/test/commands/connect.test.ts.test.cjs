/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`kubectl-plugin/test/commands/connect.test.ts > TAP > connect -o json > json 1`] = `
Object {
  "connected": true,
  "context": "kind-tp",
  "interceptedConnections": Object {
    "direct": 0,
    "relayed": 0,
  },
  "managerNamespace": "tp-system",
  "managerVersion": "1.2.3",
  "namespace": "default",
  "server": "https://127.0.0.1:6443",
  "sessionId": "sess-1",
}
`

exports[`kubectl-plugin/test/commands/connect.test.ts > TAP > connect starts the daemon and connects it with the kube flags > text 1`] = `
Connected to context ctx2 (https://127.0.0.1:6443), namespace default; traffic-manager v1.2.3 in tp-system

`
