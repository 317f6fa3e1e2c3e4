/**
 * client-node's model types, re-exported (types only, erased at build time) so that manifests and
 * status readers outside kube/ are typed without importing client-node themselves.
 */
export type {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1ConfigMap,
  V1LabelSelector,
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1MutatingWebhookConfiguration,
  V1Namespace,
  V1Pod,
  V1ReplicaSet,
  V1ResourceRequirements,
  V1Secret,
  V1Service,
  V1ServiceAccount,
  V1StatefulSet,
  V1Toleration,
  V1Volume,
  CoreV1Event,
} from '@kubernetes/client-node';
