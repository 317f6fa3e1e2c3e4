/* IMPORTANT
 * This snapshot file is auto-generated, but designed for humans.
 * It should be checked into source control and tracked carefully.
 * Re-generate by setting TAP_SNAPSHOT=1 and running tests.
 * Make sure to inspect the output below.  Do not ignore changes!
 */
'use strict'
exports[`core/test/install/install.test.ts > TAP > install applies everything, then waits with progress lines > apply order 1`] = `
Array [
  "apply Namespace/tp-system",
  "apply ServiceAccount/traffic-manager",
  "apply ServiceAccount/agent-injector",
  "apply ClusterRole/traffic-manager-tp-system",
  "apply ClusterRole/agent-injector-tp-system",
  "apply ClusterRoleBinding/traffic-manager-tp-system",
  "apply ClusterRoleBinding/agent-injector-tp-system",
  "apply Service/traffic-manager",
  "apply Service/agent-injector",
  "apply Secret/agent-injector-tls",
  "apply Deployment/traffic-manager",
  "apply Deployment/agent-injector",
  "apply MutatingWebhookConfiguration/agent-injector-webhook-tp-system",
]
`

exports[`core/test/install/install.test.ts > TAP > install applies everything, then waits with progress lines > progress lines 1`] = `
Array [
  "installing the traffic-manager into namespace tp-system (context kind-tp)",
  "waiting for deployment/traffic-manager: 0 of 1 ready",
  "waiting for deployment/agent-injector: 0 of 1 ready",
  "deployment/traffic-manager is available",
  "deployment/agent-injector is available",
]
`

exports[`core/test/install/install.test.ts > TAP > the manifests > every object install applies 1`] = `
Array [
  Object {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": Object {
      "labels": Object {
        "app.kubernetes.io/managed-by": "telepresence-ts",
        "telepresence.io/manager-namespace": "tp-system",
      },
      "name": "tp-system",
    },
  },
  Object {
    "apiVersion": "v1",
    "kind": "ServiceAccount",
    "metadata": Object {
      "labels": Object {
        "app.kubernetes.io/managed-by": "telepresence-ts",
        "app.kubernetes.io/name": "traffic-manager",
        "telepresence.io/manager-namespace": "tp-system",
      },
      "name": "traffic-manager",
      "namespace": "tp-system",
    },
  },
  Object {
    "apiVersion": "v1",
    "kind": "ServiceAccount",
    "metadata": Object {
      "labels": Object {
        "app.kubernetes.io/managed-by": "telepresence-ts",
        "app.kubernetes.io/name": "agent-injector",
        "telepresence.io/manager-namespace": "tp-system",
      },
      "name": "agent-injector",
      "namespace": "tp-system",
    },
  },
  Object {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": Object {
      "labels": Object {
        "app.kubernetes.io/managed-by": "telepresence-ts",
        "app.kubernetes.io/name": "traffic-manager",
        "telepresence.io/manager-namespace": "tp-system",
      },
      "name": "traffic-manager-tp-system",
    },
    "rules": Array [
      Object {
        "apiGroups": Array [
          "apps",
        ],
        "resources": Array [
          "deployments",
          "replicasets",
          "statefulsets",
        ],
        "verbs": Array [
          "get",
          "list",
          "watch",
          "patch",
        ],
      },
      Object {
        "apiGroups": Array [
          "",
        ],
        "resources": Array [
          "pods",
          "services",
          "events",
          "namespaces",
        ],
        "verbs": Array [
          "get",
          "list",
          "watch",
        ],
      },
      Object {
        "apiGroups": Array [
          "",
        ],
        "resources": Array [
          "pods",
        ],
        "verbs": Array [
          "delete",
        ],
      },
      Object {
        "apiGroups": Array [
          "",
        ],
        "resources": Array [
          "pods/eviction",
        ],
        "verbs": Array [
          "create",
        ],
      },
      Object {
        "apiGroups": Array [
          "",
        ],
        "resources": Array [
          "configmaps",
        ],
        "verbs": Array [
          "get",
          "list",
          "watch",
          "create",
          "update",
          "patch",
          "delete",
        ],
      },
      Object {
        "apiGroups": Array [
          "",
        ],
        "resources": Array [
          "nodes",
        ],
        "verbs": Array [
          "get",
          "list",
        ],
      },
      Object {
        "apiGroups": Array [
          "networking.k8s.io",
        ],
        "resources": Array [
          "servicecidrs",
        ],
        "verbs": Array [
          "list",
        ],
      },
      Object {
        "apiGroups": Array [
          "",
        ],
        "resources": Array [
          "services",
        ],
        "verbs": Array [
          "create",
        ],
      },
      Object {
        "apiGroups": Array [
          "discovery.k8s.io",
        ],
        "resources": Array [
          "endpointslices",
        ],
        "verbs": Array [
          "list",
        ],
      },
      Object {
        "apiGroups": Array [
          "admissionregistration.k8s.io",
        ],
        "resourceNames": Array [
          "agent-injector-webhook-tp-system",
        ],
        "resources": Array [
          "mutatingwebhookconfigurations",
        ],
        "verbs": Array [
          "get",
        ],
      },
    ],
  },
  Object {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRole",
    "metadata": Object {
      "labels": Object {
        "app.kubernetes.io/managed-by": "telepresence-ts",
        "app.kubernetes.io/name": "agent-injector",
        "telepresence.io/manager-namespace": "tp-system",
      },
      "name": "agent-injector-tp-system",
    },
    "rules": Array [
      Object {
        "apiGroups": Array [
          "",
        ],
        "resources": Array [
          "configmaps",
        ],
        "verbs": Array [
          "get",
          "list",
          "watch",
          "create",
          "update",
          "patch",
        ],
      },
      Object {
        "apiGroups": Array [
          "apps",
        ],
        "resources": Array [
          "replicasets",
          "deployments",
          "statefulsets",
        ],
        "verbs": Array [
          "get",
          "list",
          "watch",
        ],
      },
      Object {
        "apiGroups": Array [
          "",
        ],
        "resources": Array [
          "services",
        ],
        "verbs": Array [
          "list",
        ],
      },
      Object {
        "apiGroups": Array [
          "",
        ],
        "resources": Array [
          "namespaces",
        ],
        "verbs": Array [
          "get",
        ],
      },
    ],
  },
  Object {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": Object {
      "labels": Object {
        "app.kubernetes.io/managed-by": "telepresence-ts",
        "app.kubernetes.io/name": "traffic-manager",
        "telepresence.io/manager-namespace": "tp-system",
      },
      "name": "traffic-manager-tp-system",
    },
    "roleRef": Object {
      "apiGroup": "rbac.authorization.k8s.io",
      "kind": "ClusterRole",
      "name": "traffic-manager-tp-system",
    },
    "subjects": Array [
      Object {
        "kind": "ServiceAccount",
        "name": "traffic-manager",
        "namespace": "tp-system",
      },
    ],
  },
  Object {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "ClusterRoleBinding",
    "metadata": Object {
      "labels": Object {
        "app.kubernetes.io/managed-by": "telepresence-ts",
        "app.kubernetes.io/name": "agent-injector",
        "telepresence.io/manager-namespace": "tp-system",
      },
      "name": "agent-injector-tp-system",
    },
    "roleRef": Object {
      "apiGroup": "rbac.authorization.k8s.io",
      "kind": "ClusterRole",
      "name": "agent-injector-tp-system",
    },
    "subjects": Array [
      Object {
        "kind": "ServiceAccount",
        "name": "agent-injector",
        "namespace": "tp-system",
      },
    ],
  },
  Object {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": Object {
      "labels": Object {
        "app.kubernetes.io/managed-by": "telepresence-ts",
        "app.kubernetes.io/name": "traffic-manager",
        "telepresence.io/manager-namespace": "tp-system",
      },
      "name": "traffic-manager",
      "namespace": "tp-system",
    },
    "spec": Object {
      "ports": Array [
        Object {
          "name": "api",
          "port": 8081,
          "protocol": "TCP",
          "targetPort": "api",
        },
      ],
      "selector": Object {
        "app.kubernetes.io/name": "traffic-manager",
      },
    },
  },
  Object {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": Object {
      "labels": Object {
        "app.kubernetes.io/managed-by": "telepresence-ts",
        "app.kubernetes.io/name": "agent-injector",
        "telepresence.io/manager-namespace": "tp-system",
      },
      "name": "agent-injector",
      "namespace": "tp-system",
    },
    "spec": Object {
      "ports": Array [
        Object {
          "name": "https",
          "port": 443,
          "protocol": "TCP",
          "targetPort": "https",
        },
      ],
      "selector": Object {
        "app.kubernetes.io/name": "agent-injector",
      },
    },
  },
  Object {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": Object {
      "labels": Object {
        "app.kubernetes.io/managed-by": "telepresence-ts",
        "app.kubernetes.io/name": "traffic-manager",
        "telepresence.io/manager-namespace": "tp-system",
      },
      "name": "traffic-manager",
      "namespace": "tp-system",
    },
    "spec": Object {
      "replicas": 1,
      "selector": Object {
        "matchLabels": Object {
          "app.kubernetes.io/name": "traffic-manager",
        },
      },
      "template": Object {
        "metadata": Object {
          "labels": Object {
            "app.kubernetes.io/managed-by": "telepresence-ts",
            "app.kubernetes.io/name": "traffic-manager",
            "telepresence.io/manager-namespace": "tp-system",
          },
        },
        "spec": Object {
          "containers": Array [
            Object {
              "env": Array [
                Object {
                  "name": "TP_MANAGER_NAMESPACE",
                  "valueFrom": Object {
                    "fieldRef": Object {
                      "fieldPath": "metadata.namespace",
                    },
                  },
                },
                Object {
                  "name": "TP_MANAGER_POD_IPS",
                  "valueFrom": Object {
                    "fieldRef": Object {
                      "fieldPath": "status.podIPs",
                    },
                  },
                },
                Object {
                  "name": "TP_AGENT_IMAGE",
                  "value": "tp-local/traffic-agent:1.2.3",
                },
                Object {
                  "name": "TP_MANAGER_PORT",
                  "value": "8081",
                },
                Object {
                  "name": "TP_AGENT_LOG_LEVEL",
                  "value": "info",
                },
                Object {
                  "name": "TP_AGENT_RESOURCES",
                  "value": "{}",
                },
              ],
              "image": "tp-local/traffic-manager:1.2.3",
              "imagePullPolicy": "IfNotPresent",
              "name": "traffic-manager",
              "ports": Array [
                Object {
                  "containerPort": 8081,
                  "name": "api",
                  "protocol": "TCP",
                },
              ],
              "readinessProbe": Object {
                "periodSeconds": 2,
                "tcpSocket": Object {
                  "port": "api",
                },
              },
            },
          ],
          "serviceAccountName": "traffic-manager",
        },
      },
    },
  },
  Object {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": Object {
      "labels": Object {
        "app.kubernetes.io/managed-by": "telepresence-ts",
        "app.kubernetes.io/name": "agent-injector",
        "telepresence.io/manager-namespace": "tp-system",
      },
      "name": "agent-injector",
      "namespace": "tp-system",
    },
    "spec": Object {
      "replicas": 1,
      "selector": Object {
        "matchLabels": Object {
          "app.kubernetes.io/name": "agent-injector",
        },
      },
      "template": Object {
        "metadata": Object {
          "labels": Object {
            "app.kubernetes.io/managed-by": "telepresence-ts",
            "app.kubernetes.io/name": "agent-injector",
            "telepresence.io/manager-namespace": "tp-system",
          },
        },
        "spec": Object {
          "containers": Array [
            Object {
              "env": Array [
                Object {
                  "name": "TP_MANAGER_NAMESPACE",
                  "valueFrom": Object {
                    "fieldRef": Object {
                      "fieldPath": "metadata.namespace",
                    },
                  },
                },
                Object {
                  "name": "TP_AGENT_IMAGE",
                  "value": "tp-local/traffic-agent:1.2.3",
                },
                Object {
                  "name": "TP_MANAGER_PORT",
                  "value": "8081",
                },
                Object {
                  "name": "TP_AGENT_LOG_LEVEL",
                  "value": "info",
                },
                Object {
                  "name": "TP_AGENT_RESOURCES",
                  "value": "{}",
                },
                Object {
                  "name": "TP_INJECTOR_PORT",
                  "value": "8443",
                },
              ],
              "image": "tp-local/agent-injector:1.2.3",
              "imagePullPolicy": "IfNotPresent",
              "name": "agent-injector",
              "ports": Array [
                Object {
                  "containerPort": 8443,
                  "name": "https",
                  "protocol": "TCP",
                },
              ],
              "readinessProbe": Object {
                "periodSeconds": 2,
                "tcpSocket": Object {
                  "port": "https",
                },
              },
              "volumeMounts": Array [
                Object {
                  "mountPath": "/etc/agent-injector/tls",
                  "name": "tls",
                  "readOnly": true,
                },
              ],
            },
          ],
          "serviceAccountName": "agent-injector",
          "volumes": Array [
            Object {
              "name": "tls",
              "secret": Object {
                "secretName": "agent-injector-tls",
              },
            },
          ],
        },
      },
    },
  },
  Object {
    "apiVersion": "admissionregistration.k8s.io/v1",
    "kind": "MutatingWebhookConfiguration",
    "metadata": Object {
      "labels": Object {
        "app.kubernetes.io/managed-by": "telepresence-ts",
        "app.kubernetes.io/name": "agent-injector",
        "telepresence.io/manager-namespace": "tp-system",
      },
      "name": "agent-injector-webhook-tp-system",
    },
    "webhooks": Array [
      Object {
        "admissionReviewVersions": Array [
          "v1",
        ],
        "clientConfig": Object {
          "caBundle": "Q0EtUEVN",
          "service": Object {
            "name": "agent-injector",
            "namespace": "tp-system",
            "path": "/agent-injector/mutate",
            "port": 443,
          },
        },
        "failurePolicy": "Ignore",
        "name": "agent-injector.tp-system.telepresence.io",
        "namespaceSelector": Object {
          "matchExpressions": Array [
            Object {
              "key": "kubernetes.io/metadata.name",
              "operator": "NotIn",
              "values": Array [
                "kube-system",
                "tp-system",
              ],
            },
          ],
        },
        "reinvocationPolicy": "Never",
        "rules": Array [
          Object {
            "apiGroups": Array [
              "",
            ],
            "apiVersions": Array [
              "v1",
            ],
            "operations": Array [
              "CREATE",
            ],
            "resources": Array [
              "pods",
            ],
            "scope": "Namespaced",
          },
        ],
        "sideEffects": "None",
        "timeoutSeconds": 5,
      },
    ],
  },
]
`

exports[`core/test/install/install.test.ts > TAP > uninstall --everything removes agents first, then this installation only > deleted 1`] = `
Array [
  "ClusterRole/agent-injector-tp-system",
  "ClusterRole/traffic-manager-tp-system",
  "ClusterRoleBinding/agent-injector-tp-system",
  "ClusterRoleBinding/traffic-manager-tp-system",
  "ConfigMap/apps/telepresence-agents",
  "Deployment/tp-system/agent-injector",
  "Deployment/tp-system/traffic-manager",
  "MutatingWebhookConfiguration/agent-injector-webhook-tp-system",
  "Namespace/tp-system",
  "Secret/tp-system/agent-injector-tls",
  "Service/tp-system/agent-injector",
  "Service/tp-system/traffic-manager",
  "ServiceAccount/tp-system/agent-injector",
  "ServiceAccount/tp-system/traffic-manager",
]
`
