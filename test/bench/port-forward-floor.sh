#!/usr/bin/env bash
# The floor under an intercept that takes a new connection per request: `kubectl port-forward`
# to the same echo app, 16 requests in flight, each on a connection of its own, against the pod
# answering directly. Every such connection crosses a port-forward stream (API server, kubelet,
# the container runtime's dial into the pod) as an intercepted one does, so this rate divided by
# the pod's own is the best such an intercept can do on this machine.
#
# Usage: bash test/bench/port-forward-floor.sh   (needs the local cluster: npm run cluster:up)
# Env:   TP_FLOOR_REQUESTS (default 2000), TP_FLOOR_CONCURRENCY (default 16),
#        TP_FLOOR_KEEPALIVE=1 for 16 keep-alive connections instead of a new one per request
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${KUBECONFIG:=/var/lib/tp-cluster/admin.kubeconfig}"
export KUBECONFIG
requests=${TP_FLOOR_REQUESTS:-2000}
concurrency=${TP_FLOOR_CONCURRENCY:-16}
keepalive=${TP_FLOOR_KEEPALIVE:-0}
ns=tp-pf-floor-$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
pf_pid=

cleanup() {
  [ -n "$pf_pid" ] && kill "$pf_pid" 2>/dev/null || true
  kubectl delete namespace "$ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

kubectl create namespace "$ns" >/dev/null
kubectl -n "$ns" create deployment echo --image=tp-local/echo:1 --port=8080 >/dev/null
kubectl -n "$ns" patch deployment echo --type=json -p '[{"op":"add","path":"/spec/template/spec/containers/0/imagePullPolicy","value":"IfNotPresent"}]' >/dev/null
kubectl -n "$ns" rollout status deployment/echo --timeout=120s >/dev/null
pod=$(kubectl -n "$ns" get pods -l app=echo -o jsonpath='{.items[0].metadata.name}')
ip=$(kubectl -n "$ns" get pod "$pod" -o jsonpath='{.status.podIP}')

# Sends GET /ping `requests` times with `concurrency` in flight, a new connection each (or over
# keep-alive connections), 200 untimed first; prints requests/s and failures.
load() {
  node -e '
    const http = require("node:http");
    const [url, total, conc, keep] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), process.argv[4] === "1"];
    const agent = keep ? new http.Agent({ keepAlive: true, maxSockets: conc }) : false;
    const run = (n) => new Promise((resolve) => {
      let started = 0, done = 0, failed = 0;
      const one = () => {
        if (started >= n) return;
        started++;
        const end = (ok) => { if (!ok) failed++; if (++done === n) resolve(failed); else one(); };
        http.get(url, { agent, timeout: 10000 }, (res) => { res.resume(); res.on("end", () => end(res.statusCode === 200)); })
          .on("error", () => end(false)).on("timeout", function () { this.destroy(); });
      };
      for (let i = 0; i < conc; i++) one();
    });
    (async () => {
      await run(200);
      const t0 = process.hrtime.bigint();
      const failed = await run(total);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      console.log(`${(total / s).toFixed(0)} ${failed}`);
    })();
  ' "$1" "$requests" "$concurrency" "$keepalive"
}

read -r direct_rps direct_failed < <(load "http://$ip:8080/ping")
kubectl -n "$ns" port-forward "pod/$pod" :8080 > /tmp/"$ns".pf 2>&1 &
pf_pid=$!
for _ in $(seq 1 100); do
  port=$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\).*/\1/p' /tmp/"$ns".pf | head -n1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "${port:-}" ] || { echo "kubectl port-forward did not start: $(cat /tmp/"$ns".pf)" >&2; exit 1; }
read -r pf_rps pf_failed < <(load "http://127.0.0.1:$port/ping")
read -r direct2_rps direct2_failed < <(load "http://$ip:8080/ping")
rm -f /tmp/"$ns".pf

app=$(( (direct_rps + direct2_rps) / 2 ))
printf '%-46s %s\n' "requests, in flight" "$requests, $concurrency ($([ "$keepalive" = 1 ] && echo "over $concurrency keep-alive connections" || echo "a new connection each"))"
printf '%-46s %s / %s req/s (failed %s / %s)\n' "the pod directly, before / after" "$direct_rps" "$direct2_rps" "$direct_failed" "$direct2_failed"
printf '%-46s %s req/s (failed %s)\n' "kubectl port-forward" "$pf_rps" "$pf_failed"
printf '%-46s %s\n' "ratio to the pod (the floor of an intercept)" "$(awk -v a="$pf_rps" -v b="$app" 'BEGIN { printf "%.2f", a / b }')"
