ARG BASE_IMAGE=node:20-bookworm-slim
FROM ${BASE_IMAGE} AS runtime
# The traffic-agent image: the Node runtime of BASE_IMAGE and what the agent runs besides it,
# copied onto an empty image, plus the one bundled file from `npm run build`. Build context is
# cluster/ (see cluster/.dockerignore):
#   npm run build && docker build -f cluster/images/agent.Dockerfile -t IMAGE cluster
# BASE_IMAGE lets the test harness use a locally built Node image instead of pulling one.
#
# Every intercepted node pulls this image, so it carries nothing else (agent-rootfs.sh): no
# shell, no package manager. It is also why it shares no layer with BASE_IMAGE: a node that runs
# apps on the same base still pulls the agent once, about a third of the base's size.
#
# How the agent-injector starts it (cluster/src/injector/inject.ts): the ENTRYPOINT below is the
# agent program and the pod's `args` pick its mode, so the injector never sets `command`:
#   args ["agent"]  the `traffic-agent` sidecar (also the default with no argument)
#   args ["init"]   the `tel-agent-init` init container: adds the iptables redirects listed in
#                   TP_AGENT_INIT_PORTS and exits; it runs as uid 0 with NET_ADMIN (set by the
#                   injector's securityContext).
# iptables and sftp-server (remote volumes, ADR 0003) come from Debian's packages: the harness's
# base-node has them; node:*-slim does not, hence the install when they are missing.
RUN if ! command -v iptables >/dev/null 2>&1 || [ ! -x /usr/lib/openssh/sftp-server ]; then \
      apt-get update && apt-get install -y --no-install-recommends iptables openssh-sftp-server && rm -rf /var/lib/apt/lists/*; \
    fi
COPY images/agent-rootfs.sh /tmp/agent-rootfs.sh
RUN sh /tmp/agent-rootfs.sh /rootfs

FROM scratch
COPY --from=runtime /rootfs/ /
WORKDIR /app
COPY dist/agent.js dist/agent.js.map /app/
# MALLOC_MMAP_THRESHOLD_: a fixed threshold, so that glibc maps the read buffers of busy
# connections (256 KiB, core/src/reused-reads.ts) on their own and unmaps them when they are
# freed. With its default, which rises after the first such free, they came from the heap,
# and the sidecar kept 12 MB more after a bulk transfer. Other C libraries ignore it.
ENV NODE_ENV=production MALLOC_MMAP_THRESHOLD_=131072 PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# uid 1000 has a passwd entry (agent-rootfs.sh): sftp-server refuses to run for one without.
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
