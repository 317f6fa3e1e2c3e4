#!/usr/bin/env bash
# Manual check of the agent-injector against a real cluster (not part of `npm run test:unit`):
# runs the injector on this machine, registers it as a mutating webhook for one throw-away
# namespace only, and checks that rolled-out pods carry the agent.
#
#   KUBECONFIG=/var/lib/tp-cluster/admin.kubeconfig TP_HOST_ADDRESS=10.243.255.1 \
#     bash cluster/test/injector/real-cluster-check.sh
#
# Needs: node, npx esbuild (the repo's), openssl, kubectl, jq-free (uses node for JSON). The
# webhook configuration and the namespace are deleted on exit, whatever happens.
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
host=${TP_HOST_ADDRESS:?set TP_HOST_ADDRESS to an address of this machine the API server can reach}
: "${KUBECONFIG:?set KUBECONFIG}"
agent_image=${TP_CHECK_AGENT_IMAGE:-tp-local/traffic-agent:0.1.0}
port=${TP_CHECK_PORT:-18443}
ns="tp-inj-dev-$(date +%s)"
webhook="tp-inj-dev-webhook-$ns"
work=$(mktemp -d)
injector_pid=

cleanup() {
  local rc=$?
  [ -n "$injector_pid" ] && kill "$injector_pid" 2>/dev/null || true
  kubectl delete mutatingwebhookconfiguration "$webhook" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  kubectl delete namespace "$ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  echo "cleaned up: webhook $webhook, namespace $ns (rc=$rc)"
  [ "$rc" -ne 0 ] && [ -f "$work/injector.log" ] && { echo '--- injector log'; tail -n 30 "$work/injector.log"; }
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# 1. The injector bundle (to a temp dir: cluster/dist belongs to `npm run build`).
(cd "$repo" && npx esbuild cluster/src/injector/main.ts --bundle --platform=node --target=node18 --format=cjs \
  --define:__TP_VERSION__='"0.0.0-dev"' --log-level=warning --outfile="$work/injector.cjs")

# 2. A CA and a serving certificate for the host address.
openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 1 -subj '/CN=tp-inj-dev CA' \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -new -nodes -newkey rsa:2048 -sha256 -subj "/CN=$host" -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' "$host" >"$work/ext"
openssl x509 -req -sha256 -days 1 -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial \
  -extfile "$work/ext" -out "$work/tls.crt" 2>/dev/null

# 3. The namespace, its workloads and the hand-made agent configuration.
kubectl create namespace "$ns" >/dev/null
config_entry() { # name agentPort containerPortName targetPortNumeric
  node -e '
    const [ns, name, image, agentPort, portName, numeric] = process.argv.slice(1);
    process.stdout.write(JSON.stringify({
      version: 1, agentName: name, namespace: ns, workloadName: name, workloadKind: "Deployment",
      agentImage: image, managerHost: "traffic-manager.tp-system", managerPort: 8081, agentApiPort: 9900,
      logLevel: "debug",
      containers: [{ name: "echo", mountPoint: "/tel_app_mounts/echo", intercepts: [{
        serviceName: name, serviceUid: "hand-made", servicePortName: "http", servicePort: 80, protocol: "TCP",
        targetPortNumeric: numeric === "true", containerPortName: portName, containerPort: 8080, agentPort: Number(agentPort),
      }] }],
    }, null, 2));' "$ns" "$@" 
}
kubectl apply -n "$ns" -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: telepresence-agents}
data:
  echo: |
$(config_entry echo "$agent_image" 9901 http false | sed 's/^/    /')
  echo-num: |
$(config_entry echo-num "$agent_image" 9901 http true | sed 's/^/    /')
EOF
for name in echo echo-num; do
  if [ "$name" = echo ]; then target=http; else target=8080; fi
  kubectl apply -n "$ns" -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: $name, labels: {app: $name}}
spec:
  replicas: 1
  selector: {matchLabels: {app: $name}}
  template:
    metadata: {labels: {app: $name}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: tp-local/echo:1
        imagePullPolicy: IfNotPresent
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
        resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 128Mi}}
---
apiVersion: v1
kind: Service
metadata: {name: $name}
spec:
  selector: {app: $name}
  ports: [{name: http, port: 80, targetPort: $target, protocol: TCP}]
EOF
done
kubectl rollout status -n "$ns" deployment/echo deployment/echo-num --timeout=120s >/dev/null
pass "workloads without the webhook are up"

# 4. The injector, on this machine.
TP_INJECTOR_PORT=$port TP_INJECTOR_TLS_CERT="$work/tls.crt" TP_INJECTOR_TLS_KEY="$work/tls.key" \
  TP_MANAGER_NAMESPACE=tp-system TP_LOG_LEVEL=debug node --enable-source-maps "$work/injector.cjs" >"$work/injector.log" 2>&1 &
injector_pid=$!
for _ in $(seq 50); do
  curl -fsS --cacert "$work/ca.crt" "https://$host:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS --cacert "$work/ca.crt" "https://$host:$port/healthz" >/dev/null || fail "the injector is not healthy"
pass "injector healthy on https://$host:$port"

# 5. The webhook registration, for this namespace only.
kubectl apply -f - >/dev/null <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: $webhook}
webhooks:
- name: agent-injector.$ns.telepresence.io
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Ignore
  timeoutSeconds: 5
  reinvocationPolicy: IfNeeded
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: $ns}}
  rules: [{apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods], scope: Namespaced}]
  clientConfig:
    url: https://$host:$port/agent-injector/mutate
    caBundle: $(base64 -w0 <"$work/ca.crt")
EOF
sleep 2 # the API server picks up webhook configurations asynchronously

# 6. Roll out; the new pods must carry the agent.
kubectl rollout restart -n "$ns" deployment/echo deployment/echo-num >/dev/null
check_pod() { # deployment, expectation script
  local name=$1 script=$2 pod=
  for _ in $(seq 60); do
    pod=$(kubectl get pods -n "$ns" -l "app=$name" -o json | node -e '
      const pods = JSON.parse(require("fs").readFileSync(0, "utf8")).items
        .filter((p) => !p.metadata.deletionTimestamp && p.spec.containers.some((c) => c.name === "traffic-agent"));
      if (pods[0]) process.stdout.write(pods[0].metadata.name);')
    [ -n "$pod" ] && break
    sleep 1
  done
  [ -n "$pod" ] || fail "$name: no pod with the traffic-agent container"
  kubectl get pod -n "$ns" "$pod" -o json | node -e "$script" || fail "$name: pod $pod does not match"
  pass "$name: pod $pod carries the agent as expected"
}
check_pod echo '
  const p = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const assert = require("assert");
  const app = p.spec.containers.find((c) => c.name === "echo");
  const agent = p.spec.containers.find((c) => c.name === "traffic-agent");
  assert.deepStrictEqual(app.ports.map((x) => x.name), ["tm-http"]);
  assert.strictEqual(app.readinessProbe.httpGet.port, 8080);
  assert.deepStrictEqual(agent.ports.map((x) => [x.name, x.containerPort]), [["http", 9901]]);
  assert.deepStrictEqual(agent.args, ["agent"]);
  assert.match(p.metadata.annotations["telepresence.io/agent-config-hash"], /^[0-9a-f]{16}$/);
  assert.strictEqual(p.metadata.labels["telepresence.io/agent-injected"], "true");
  assert.ok(p.spec.volumes.some((v) => v.name === "traffic-agent-config" && v.configMap.name === "telepresence-agents"));
  assert.ok(!(p.spec.initContainers || []).some((c) => c.name === "tel-agent-init"));'
check_pod echo-num '
  const p = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const assert = require("assert");
  const init = (p.spec.initContainers || []).find((c) => c.name === "tel-agent-init");
  assert.ok(init, "init container");
  assert.deepStrictEqual(init.args, ["init"]);
  assert.strictEqual(init.env.find((e) => e.name === "TP_AGENT_INIT_PORTS").value, "8080:9901");
  assert.deepStrictEqual(init.securityContext.capabilities.add, ["NET_ADMIN"]);
  const app = p.spec.containers.find((c) => c.name === "echo");
  assert.deepStrictEqual(app.ports.map((x) => x.name), ["http"]);'

# 7. The Service with the symbolic targetPort now resolves to the agent's port.
for _ in $(seq 30); do
  ports=$(kubectl get endpointslices -n "$ns" -l kubernetes.io/service-name=echo -o jsonpath='{.items[*].ports[*].port}')
  [[ " $ports " == *" 9901 "* ]] && break
  sleep 1
done
[[ " $ports " == *" 9901 "* ]] || fail "Service echo's endpoints use port(s) '$ports', not the agent's 9901"
pass "Service echo (targetPort: http) resolves to the agent port 9901"

# 8. The decisions were logged; a second pass over an injected pod would be empty (unit-tested).
grep -q '"msg":"injected agent"' "$work/injector.log" || fail "no 'injected agent' line in the injector log"
pass "injector logged: $(grep -c '"msg":"injected agent"' "$work/injector.log") injection(s), $(grep -c '"msg":"admitted unchanged"' "$work/injector.log") unchanged"

echo '--- decisions'
grep -E '"msg":"(injected agent|admitted unchanged|admitted without agent)"' "$work/injector.log" | cut -c1-300

# 9. With TP_CHECK_TRAFFIC=1 and an agent image loaded on the node: the pods become Ready and
#    traffic through both Services (symbolic and numeric targetPort) reaches the app via the agent.
if [ "${TP_CHECK_TRAFFIC:-0}" = 1 ]; then
  kubectl rollout status -n "$ns" deployment/echo deployment/echo-num --timeout=120s >/dev/null ||
    { kubectl get pods -n "$ns" -o wide; fail "the injected pods did not become Ready"; }
  pass "injected pods are Ready"
  echo "--- tel-agent-init of echo-num"
  kubectl logs -n "$ns" deployment/echo-num -c tel-agent-init 2>&1 | cut -c1-300 || true
  kubectl run client -n "$ns" --image=tp-local/echo:1 --image-pull-policy=IfNotPresent --restart=Never -i --rm --quiet \
    --command -- node -e '
      (async () => {
        for (const svc of ["echo", "echo-num"]) {
          const r = await fetch(`http://${svc}/`, { signal: AbortSignal.timeout(5000) });
          console.log(svc, r.status);
          if (r.status !== 200) process.exitCode = 1;
        }
      })().catch((e) => { console.error(String(e)); process.exitCode = 1; });' || fail "traffic through the Services failed"
  pass "both Services answer through the agent"
  echo "--- agent of echo-num"
  kubectl logs -n "$ns" deployment/echo-num -c traffic-agent --tail=5 2>&1 | cut -c1-300 || true
else
  kubectl get pods -n "$ns" -o wide
fi
