#!/usr/bin/env bash
# The main job on a fresh machine: installs what is needed, brings up the local Kubernetes,
# installs telepresence-ts into it, deploys a sample workload, intercepts it to a process on
# this machine, and shows a request sent from inside the cluster being answered by that process.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }
version=$(node -p "require('./package.json').version")

step "dependencies";  bash scripts/install-deps.sh
step "build";         npm run -s build
step "cluster up"
kubeconfig=$(bash test/cluster/up.sh | tail -n 1)
export "${kubeconfig?}"
echo "$kubeconfig"
export PATH="$PWD/dist/bin:$PATH"   # kubectl finds the plugin `kubectl-telepresence` here

step "images: the traffic-manager, agent-injector and traffic-agent, and the sample app"
bash test/cluster/images/build.sh traffic-manager agent-injector traffic-agent echo
bash test/cluster/load-image.sh "tp-local/traffic-manager:$version" "tp-local/agent-injector:$version" \
  "tp-local/traffic-agent:$version" tp-local/echo:1

step "kubectl telepresence install"
kubectl telepresence install

step "sample workload: deployment/hello (2 replicas) behind service/hello"
kubectl apply -f test/fixtures/demo/hello.yaml
kubectl -n tp-demo rollout status deployment/hello --timeout=120s
kubectl -n tp-demo delete pod demo-client --ignore-not-found --wait=true >/dev/null
kubectl -n tp-demo run demo-client --image=tp-local/echo:1 --image-pull-policy=IfNotPresent --restart=Never >/dev/null
kubectl -n tp-demo wait --for=condition=Ready pod/demo-client --timeout=120s >/dev/null
ask() {
  # kubectl exec's WebSocket client logs a harmless "Unknown stream id" line now and then.
  kubectl -n tp-demo exec demo-client -- node -e \
    "fetch('http://hello.tp-demo/greeting').then(r => r.json()).then(j => console.log('  answered by ' + j.host))" \
    2> >(grep -v 'Unknown stream id' >&2)
}
echo "a request from inside the cluster:"; ask

step "a local process on port 7070, then: kubectl telepresence intercept hello --port 7070:http"
node -e "require('node:http').createServer((q, s) => s.end(JSON.stringify({ host: 'the process on your workstation (' + q.method + ' ' + q.url + ')' }))).listen(7070, '127.0.0.1')" &
local_pid=$!
trap 'kill $local_pid 2>/dev/null' EXIT
# This machine is the cluster's node and already reaches its pods and Services, so outbound
# access (which would route them through the cluster) is left off here: intercepts only.
kubectl telepresence connect --namespace tp-demo --outbound=false
kubectl telepresence intercept hello --port 7070:http --namespace tp-demo
echo "the same request from inside the cluster:"; ask
kubectl telepresence list --namespace tp-demo

step "kubectl telepresence leave hello-tp-demo"
kubectl telepresence leave hello-tp-demo
echo "and again:"; ask
kubectl telepresence quit

cat <<MSG

The cluster stays up for you to explore:
  export $kubeconfig PATH=$PWD/dist/bin:\$PATH
  kubectl telepresence --help
Take it down again with: npm run cluster:down
MSG
