#!/usr/bin/env bash
# Throughput of reading one large file of an intercepted container's volume: through the sshfs
# mount of `intercept --mount`, against `kubectl cp` of the same file. Both read the pod's
# emptyDir over the API server's streaming (a port-forward for sshfs, an exec of tar for cp), so
# the difference is the protocol: SFTP requests in flight against one tar stream.
#
#   bash test/bench/volume-read.sh [SIZE_MIB]     (default 64)
#
# Needs: the cluster up (npm run cluster:up), `npm run build`, the product images loaded (an e2e
# suite or `kubectl telepresence install` does it), sshfs. Uses its own namespace and daemon,
# and removes both; the traffic-manager is installed if missing and left installed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
size_mib=${1:-64}
export KUBECONFIG=${KUBECONFIG:-/var/lib/tp-cluster/admin.kubeconfig}
export PATH="$repo/dist/bin:$PATH"
ns=tp-bench-$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
work=$(mktemp -d)
export XDG_RUNTIME_DIR=$work/rt XDG_CACHE_HOME=$work/cache
mkdir -p "$XDG_RUNTIME_DIR"

cleanup() {
  kubectl telepresence quit >/dev/null 2>&1 || true
  kubectl delete namespace "$ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

seconds() { date +%s.%N; }
rate() { awk -v mib="$size_mib" -v a="$1" -v b="$2" 'BEGIN { printf "%6.1f s  %7.1f MiB/s", b - a, mib / (b - a) }'; }

kubectl telepresence install >/dev/null
kubectl create namespace "$ns" >/dev/null
kubectl apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: bench, namespace: $ns}
spec:
  replicas: 1
  selector: {matchLabels: {app: bench}}
  template:
    metadata: {labels: {app: bench}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: tp-local/echo:1
        imagePullPolicy: IfNotPresent
        ports: [{name: http, containerPort: 8080}]
        volumeMounts: [{name: data, mountPath: /data}]
      volumes: [{name: data, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: bench, namespace: $ns}
spec: {selector: {app: bench}, ports: [{name: http, port: 80, targetPort: http}]}
YAML
kubectl -n "$ns" rollout status deployment/bench --timeout=120s >/dev/null

mnt=$work/mnt
kubectl telepresence intercept bench -n "$ns" --port 38999:http --mount "$mnt" >/dev/null
pod=$(kubectl -n "$ns" get pods -l app=bench,telepresence.io/agent-injected=true --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}')
kubectl -n "$ns" exec "$pod" -c app -- dd if=/dev/urandom of=/data/big.bin bs=1M count="$size_mib" status=none
want=$(kubectl -n "$ns" exec "$pod" -c app -- sha256sum /data/big.bin | cut -d' ' -f1)

t0=$(seconds)
got_mount=$(sha256sum <"$mnt/data/big.bin" | cut -d' ' -f1)
t1=$(seconds)
kubectl -n "$ns" cp -c app "$pod:/data/big.bin" "$work/big.bin" >/dev/null 2>&1
t2=$(seconds)
got_cp=$(sha256sum <"$work/big.bin" | cut -d' ' -f1)

[ "$got_mount" = "$want" ] || { echo "error: the file read through the mount differs from the pod's" >&2; exit 1; }
[ "$got_cp" = "$want" ] || { echo "error: the file kubectl cp copied differs from the pod's" >&2; exit 1; }
echo "reading a ${size_mib} MiB file of an intercepted container's emptyDir ($(nproc) cores, $(date -u +%Y-%m-%d)):"
echo "  sshfs mount:  $(rate "$t0" "$t1")"
echo "  kubectl cp:   $(rate "$t1" "$t2")"
kubectl telepresence leave "bench-$ns" >/dev/null
