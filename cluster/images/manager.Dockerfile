ARG BASE_IMAGE=node:20-bookworm-slim
FROM ${BASE_IMAGE}
# The traffic-manager image: Node plus the one bundled file from `npm run build`. Build context is
# cluster/ (see cluster/.dockerignore):
#   npm run build && docker build -f cluster/images/manager.Dockerfile -t IMAGE cluster
# BASE_IMAGE lets the test harness use a locally built Node image instead of pulling one.
WORKDIR /app
COPY dist/manager.js dist/manager.js.map /app/
ENV NODE_ENV=production
# Any non-root uid; numeric so that base images without a passwd entry for it work too.
USER 1000:1000
# the gRPC API (for now /healthz)
EXPOSE 8081
ENTRYPOINT ["node", "--enable-source-maps", "/app/manager.js"]
