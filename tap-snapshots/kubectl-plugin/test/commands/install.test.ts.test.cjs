/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`kubectl-plugin/test/commands/install.test.ts > TAP > install applies, waits and reports; progress goes to stderr > progress 1`] = `
installing the traffic-manager into namespace tp-system (context kind-tp)
deployment/traffic-manager is available
deployment/agent-injector is available

`

exports[`kubectl-plugin/test/commands/install.test.ts > TAP > install applies, waits and reports; progress goes to stderr > text 1`] = `
Traffic manager installed in namespace tp-system (tp-local/traffic-manager:1.2.3, tp-local/agent-injector:1.2.3; agents me/agent:dev)

`
