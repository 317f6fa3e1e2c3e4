ARG BASE_IMAGE=node:20-bookworm-slim
FROM ${BASE_IMAGE}
# The traffic-manager image: Node plus the one bundled file from `npm run build`. Build context is
# cluster/ (see cluster/.dockerignore):
#   npm run build && docker build -f cluster/images/manager.Dockerfile -t IMAGE cluster
# BASE_IMAGE lets the test harness use a locally built Node image instead of pulling one.
#
# The ENTRYPOINT below is the traffic-manager program; `args` pick its mode (cluster/src/manager/main.ts):
#   no args                 the traffic-manager (its Deployment, from install and from the chart)
#   args ["remove-agents"]  the Helm chart's pre-delete hook Job: removes every agent
#                           configuration, waits (120 s at most) while the running traffic-manager
#                           evicts the pods that have an agent, and exits (docs/helm.md).
WORKDIR /app
COPY dist/manager.js dist/manager.js.map /app/
ENV NODE_ENV=production
# Any non-root uid; numeric so that base images without a passwd entry for it work too.
USER 1000:1000
# the gRPC API (for now /healthz)
EXPOSE 8081
ENTRYPOINT ["node", "--enable-source-maps", "/app/manager.js"]
