/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`kubectl-plugin/test/commands/list.test.ts > TAP > list -o json > json 1`] = `
Object {
  "workloads": Array [
    Object {
      "agent": "installed",
      "intercepts": Array [
        Object {
          "client": "alice@laptop",
          "container": "echo",
          "containerPort": 8080,
          "headers": Array [],
          "httpMethods": Array [],
          "httpPathPrefix": "",
          "id": "sess-1:echo-default",
          "localPort": 8080,
          "mode": "intercept",
          "name": "echo-default",
          "namespace": "default",
          "service": "echo",
          "servicePort": "http",
          "state": "ACTIVE",
          "workload": "echo",
        },
      ],
      "kind": "Deployment",
      "name": "echo",
      "namespace": "default",
      "readyReplicas": 1,
      "replicas": 1,
    },
    Object {
      "agent": "none",
      "intercepts": Array [],
      "kind": "StatefulSet",
      "name": "db",
      "namespace": "default",
      "readyReplicas": 0,
      "replicas": 1,
    },
  ],
}
`

exports[`kubectl-plugin/test/commands/list.test.ts > TAP > list prints a table > text 1`] = `
NAME  KIND         READY  AGENT      INTERCEPTED
echo  Deployment   1/1    installed  echo-default by alice@laptop -> localhost:8080 (ACTIVE)
db    StatefulSet  0/1    none       -

`
