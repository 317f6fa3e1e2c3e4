ARG BASE_IMAGE=node:20-bookworm-slim
FROM ${BASE_IMAGE}
# The traffic-agent image: Node plus the one bundled file from `npm run build`. Build context is
# cluster/ (see cluster/.dockerignore):
#   npm run build && docker build -f cluster/images/agent.Dockerfile -t IMAGE cluster
# BASE_IMAGE lets the test harness use a locally built Node image instead of pulling one.
#
# How the agent-injector starts it (cluster/src/injector/inject.ts): the ENTRYPOINT below is the
# agent program and the pod's `args` pick its mode, so the injector never sets `command`:
#   args ["agent"]  the `traffic-agent` sidecar (also the default with no argument)
#   args ["init"]   the `tel-agent-init` init container: adds the iptables redirects listed in
#                   TP_AGENT_INIT_PORTS and exits; it runs as uid 0 with NET_ADMIN (set by the
#                   injector's securityContext), so the image needs the iptables binaries. The
#                   harness's base-node has them (base-debian installs iptables); the default
#                   node:*-slim does not, hence the install below when they are missing.
ARG INSTALL_IPTABLES=auto
RUN if [ "$INSTALL_IPTABLES" = auto ] && ! command -v iptables >/dev/null 2>&1; then \
      apt-get update && apt-get install -y --no-install-recommends iptables && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /app
COPY dist/agent.js dist/agent.js.map /app/
# MALLOC_MMAP_THRESHOLD_: a fixed threshold, so that glibc maps the read buffers of busy
# connections (256 KiB, core/src/reused-reads.ts) on their own and unmaps them when they are
# freed. With its default, which rises after the first such free, they came from the heap,
# and the sidecar kept 12 MB more after a bulk transfer. Other C libraries ignore it.
ENV NODE_ENV=production MALLOC_MMAP_THRESHOLD_=131072
# sftp-server (remote volumes, ADR 0003) refuses to run for a uid without a passwd entry.
RUN grep -q '^[^:]*:[^:]*:1000:' /etc/passwd || echo 'traffic-agent:x:1000:1000:traffic-agent:/tmp:/usr/sbin/nologin' >> /etc/passwd
# Any non-root uid; numeric so that base images without a passwd entry for it work too.
USER 1000:1000
# the agent API (/healthz); intercepted ports follow it (9901, ...)
EXPOSE 9900
# No --enable-source-maps here, unlike the manager: Node parses the whole map at start-up,
# which costs the sidecar of every intercepted pod over 38 MB. The bundle is not minified, so
# its stack traces stay readable; the map is still in the image for offline use.
# --max-semi-space-size: V8 grows its young generation up to 3 x 16 MB under load and never
# gives it back, which is how a sidecar that idles at 60 MB sat at 100 MB after one bulk
# transfer. 2 MB semi-spaces keep the agent's memory flat for a few more (cheap) scavenges.
ENTRYPOINT ["node", "--max-semi-space-size=2", "/app/agent.js"]
