/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`kubectl-plugin/test/commands/status.test.ts > TAP > status when connected > json 1`] = `
Object {
  "connection": Object {
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
  },
  "daemon": Object {
    "running": true,
    "version": "1.2.3",
  },
  "intercepts": Array [],
}
`

exports[`kubectl-plugin/test/commands/status.test.ts > TAP > status when connected > text 1`] = `
Daemon: running (v1.2.3)
Connection: connected to context kind-tp (https://127.0.0.1:6443), namespace default
Traffic manager: v1.2.3 in namespace tp-system, session sess-1
Intercepts: none

`

exports[`kubectl-plugin/test/commands/status.test.ts > TAP > status when the last connect failed > text 1`] = `
Daemon: running (v1.2.3)
Connection: not connected
Last error: the traffic-manager in namespace tp-system has no ready pod (1 pods)

`
