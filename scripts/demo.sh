#!/usr/bin/env bash
# The main job on a fresh machine: installs what is needed, brings up the local Kubernetes,
# deploys a sample workload and shows a request from inside the cluster being answered.
# It goes as far as the product does today; see README.md for what comes next.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }

step "dependencies";  bash scripts/install-deps.sh
step "build";         npm run -s build
step "cluster up"
kubeconfig=$(bash test/cluster/up.sh | tail -n 1)
export "${kubeconfig?}"
echo "$kubeconfig"

step "sample workload: deployment/hello (2 replicas) behind service/hello"
bash test/cluster/images/build.sh echo
bash test/cluster/load-image.sh tp-local/echo:1
kubectl apply -f test/fixtures/demo/hello.yaml
kubectl -n tp-demo rollout status deployment/hello --timeout=120s

step "a request from inside the cluster, answered by the workload"
kubectl -n tp-demo delete pod demo-client --ignore-not-found --wait=true >/dev/null
kubectl -n tp-demo run demo-client --image=tp-local/echo:1 --image-pull-policy=IfNotPresent --restart=Never --quiet \
  --attach --rm -- node -e "fetch('http://hello.tp-demo/greeting').then(r => r.json()).then(j => console.log('answered by pod ' + j.host + ' for ' + j.method + ' ' + j.path))"

step "the kubectl plugin"
PATH="$PWD/dist/bin:$PATH" kubectl telepresence version

cat <<MSG

The cluster stays up for you to explore:
  export $kubeconfig
  kubectl -n tp-demo get pods,svc
Take it down again with: npm run cluster:down
MSG
