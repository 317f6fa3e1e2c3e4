#!/usr/bin/env bash
# The main job on a fresh machine: installs what is needed, brings up the local Kubernetes,
# installs telepresence-ts into it, deploys a sample workload, intercepts it to a process on
# this machine, and shows a request sent from inside the cluster being answered by that process;
# then, from a workstation that reaches only the API server, calls the workload by its name.
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

step "outbound access: a workstation that reaches only the API server calls service/hello by name"
# This machine is the cluster's node and reaches its pods anyway, so the workstation here is a
# network namespace of its own: a veth to this machine and one route, to the API server.
ws=tp-demo-ws
api_ip=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}' | sed -E 's#^https://\[?([^]/]*)\]?:[0-9]+.*#\1#')
ws_dir=$(mktemp -d)
cleanup_ws() {
  ip netns pids "$ws" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$ws" 2>/dev/null || true
  ip link del tpdemo0h 2>/dev/null || true
  rm -rf "/etc/netns/$ws" "$ws_dir"
}
cleanup_ws
trap 'kill $local_pid 2>/dev/null; cleanup_ws' EXIT
ip netns add "$ws"
ip link add tpdemo0h type veth peer name tpdemo0n
ip link set tpdemo0n netns "$ws"
ip addr add 10.243.253.1/30 dev tpdemo0h && ip link set tpdemo0h up
ip -n "$ws" addr add 10.243.253.2/30 dev tpdemo0n && ip -n "$ws" link set tpdemo0n up && ip -n "$ws" link set lo up
ip -n "$ws" route add "$api_ip/32" via 10.243.253.1
# The namespace's own (empty) resolver: cluster names are answered through outbound access.
mkdir -p "/etc/netns/$ws" && echo "nameserver 127.0.0.1" >"/etc/netns/$ws/resolv.conf"
in_ws() {
  ip netns exec "$ws" env XDG_RUNTIME_DIR="$ws_dir/run" XDG_CACHE_HOME="$ws_dir/cache" \
    TELEPRESENCE_NETWORK_SOCKET="$ws_dir/network.sock" PATH="$PATH" KUBECONFIG="$KUBECONFIG" "$@"
}
echo "before connect:"; in_ws curl -sS --max-time 3 http://hello.tp-demo/greeting || true
in_ws kubectl telepresence connect --namespace tp-demo
echo "after connect, by short name:"; in_ws curl -sS --max-time 5 http://hello/greeting; echo
in_ws kubectl telepresence quit
cleanup_ws

cat <<MSG

The cluster stays up for you to explore:
  export $kubeconfig PATH=$PWD/dist/bin:\$PATH
  kubectl telepresence --help
Take it down again with: npm run cluster:down
MSG
