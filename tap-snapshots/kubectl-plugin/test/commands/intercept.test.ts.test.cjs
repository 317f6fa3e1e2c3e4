/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`kubectl-plugin/test/commands/intercept.test.ts > TAP > intercept -o json > json 1`] = `
Object {
  "client": "alice@laptop",
  "container": "echo",
  "containerPort": 8080,
  "envFile": "",
  "envJson": "",
  "headers": Array [],
  "httpMethods": Array [],
  "httpPathPrefix": "",
  "id": "sess-1:echo-default",
  "localPort": 8080,
  "mode": "intercept",
  "mountPoint": "",
  "mounts": Array [],
  "name": "echo-default",
  "namespace": "default",
  "service": "echo",
  "servicePort": "http",
  "state": "ACTIVE",
  "traffic": "",
  "workload": "echo",
}
`

exports[`kubectl-plugin/test/commands/intercept.test.ts > TAP > intercept: progress on stderr, the result on stdout > text 1`] = `
Using Deployment echo
   Intercept name : echo-default
   State          : ACTIVE
   Destination    : localhost:8080
   Requests       : all (global intercept)
   Service port   : echo:http (80)
   Container      : echo:8080

`
