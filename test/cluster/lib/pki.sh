# Makes the cluster's certificates with openssl: one CA, a serving certificate for the API
# server, one client certificate per component, and the service-account signing key.
# shellcheck shell=bash

# tp_pki_cert NAME SUBJECT [SAN]: an EC P-256 key and a certificate signed by the CA.
# EC keys keep a full PKI run well under a second.
tp_pki_cert() {
  local name=$1 subject=$2 san=${3:-} dir=$TP_STATE/pki ext
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/$name.key" -subj "$subject" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 365 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$ext" "$dir/$name.csr"
}

# tp_kubeconfig FILE USER CERTNAME: a kubeconfig that authenticates with a client certificate.
tp_kubeconfig() {
  local file=$1 user=$2 cert=$3 dir=$TP_STATE/pki
  cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: tp-local
  cluster:
    server: https://$TP_NODE_IP:$TP_PORT_APISERVER
    certificate-authority-data: $(base64 -w0 "$dir/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$dir/$cert.crt")
    client-key-data: $(base64 -w0 "$dir/$cert.key")
contexts:
- name: tp-local
  context: {cluster: tp-local, user: $user}
current-context: tp-local
KC
  chmod 600 "$file"
}

tp_pki_all() {
  local dir=$TP_STATE/pki
  mkdir -p "$dir"
  chmod 700 "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" -subj "/CN=tp-local-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  tp_pki_cert apiserver "/CN=kube-apiserver" \
    "IP:$TP_NODE_IP,IP:$TP_KUBERNETES_SVC_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$TP_CLUSTER_DOMAIN"
  tp_pki_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  tp_pki_cert admin "/O=system:masters/CN=tp-admin"
  tp_pki_cert controller-manager "/CN=system:kube-controller-manager"
  tp_pki_cert scheduler "/CN=system:kube-scheduler"
  tp_pki_cert kubelet "/O=system:nodes/CN=system:node:$TP_NODE_NAME"
  tp_pki_cert kube-proxy "/CN=system:kube-proxy"
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/sa.key.ec" 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in "$dir/sa.key.ec" -out "$dir/sa.key"
  openssl ec -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  rm -f "$dir/sa.key.ec"

  tp_kubeconfig "$TP_ADMIN_KUBECONFIG" tp-admin admin
  tp_kubeconfig "$TP_STATE/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
  tp_kubeconfig "$TP_STATE/scheduler.kubeconfig" system:kube-scheduler scheduler
  tp_kubeconfig "$TP_STATE/kubelet.kubeconfig" "system:node:$TP_NODE_NAME" kubelet
  tp_kubeconfig "$TP_STATE/kube-proxy.kubeconfig" system:kube-proxy kube-proxy
}
