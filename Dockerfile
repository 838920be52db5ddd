# The container image of any of the programs; the build argument PROGRAM picks which. Build from the repository root:
#   docker build --build-arg PROGRAM=cmd-nsmgr -t nsm-ts/cmd-nsmgr .
# PROGRAM is one of cmd-registry, cmd-nsmgr, cmd-nsmgr-proxy, cmd-forwarder, cmd-endpoint, cmd-nsc, cmd-nse-vl3, cmd-traffic-controller. The build takes the whole
# repository as context (.dockerignore leaves out what a build makes again) and never lists the workspaces: npm
# and scripts/docker-image.js read them from package.json. What differs between the programs (user, ports,
# packages, entrypoint) is in the stage named after each, at the end.
ARG PROGRAM

# --- manifests: package.json of the root and of every workspace, and the lock file, at their places ---
# Only these reach the npm ci below, so it runs again only when they change, not on every source edit.
FROM node:20-slim AS manifests
WORKDIR /src
COPY . .
RUN node -e ' \
  const fs = require("node:fs"); \
  const ws = JSON.parse(fs.readFileSync("package.json", "utf8")).workspaces; \
  for (const f of ["package.json", "package-lock.json", ...ws.map((w) => `${w}/package.json`)]) \
    fs.cpSync(f, `/manifests/${f}`);'

# --- build: every workspace's dependencies, PROGRAM and the workspaces it references compiled, PROGRAM bundled
# (its bin launcher runs the bundle), then production dependencies only, and the image's files laid out in /image ---
FROM node:20-slim AS build
ARG PROGRAM
WORKDIR /app
COPY --from=manifests /manifests/ ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN test -f "${PROGRAM}/bin/${PROGRAM}.js" \
 || { echo "PROGRAM=${PROGRAM}: want one of $(echo cmd-*)" >&2; exit 1; }
RUN node_modules/.bin/tsc -b "${PROGRAM}" \
 && node scripts/bundle.js "${PROGRAM}" \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && node scripts/docker-image.js "${PROGRAM}" /image

# --- runtime: production node_modules and the compiled workspaces PROGRAM needs (no test files), nothing else ---
FROM node:20-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /image/ ./

# --- one stage per program; configuration is by environment variables only: docker run --rm <image> --help ---
FROM runtime AS cmd-registry
USER node
EXPOSE 5002
ENTRYPOINT ["node", "cmd-registry/bin/cmd-registry.js"]

FROM runtime AS cmd-nsmgr
# The node socket directory; a hostPath mounted here must be writable by uid 1000 (node), e.g. through an
# initContainer that chowns it, so that the clients, endpoints and forwarders of the node can share it.
RUN mkdir -p /var/lib/networkservicemesh && chown node:node /var/lib/networkservicemesh
USER node
EXPOSE 5001
ENTRYPOINT ["node", "cmd-nsmgr/bin/cmd-nsmgr.js"]

FROM runtime AS cmd-nsmgr-proxy
# A domain's edge for interdomain connections and registrations; reached by the other domains on tcp 5004.
USER node
EXPOSE 5004
ENTRYPOINT ["node", "cmd-nsmgr-proxy/bin/cmd-nsmgr-proxy.js"]

FROM runtime AS cmd-forwarder
# The KERNEL backend creates veth/VXLAN devices and enters other pods' network namespaces, so this image
# runs as root and the pod needs: securityContext.capabilities.add [NET_ADMIN, SYS_ADMIN] (or privileged),
# hostPID: true (to open /proc/<pid>/ns/net of client and endpoint pods), and the nsm socket hostPath
# /var/lib/networkservicemesh. With NSM_FORWARDER_MECHANISM=NOOP (the default) none of that is needed and the
# container may run with `--user node`. iproute2 is there for the kernel data plane and for debugging, nftables
# for the ServiceIP rules it puts into its clients' namespaces (NSM_SERVICES_URL).
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 nftables \
 && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["node", "cmd-forwarder/bin/cmd-forwarder.js"]

FROM runtime AS cmd-endpoint
USER node
ENTRYPOINT ["node", "cmd-endpoint/bin/cmd-endpoint.js"]

FROM runtime AS cmd-nsc
# Runs as node. To apply DNS configs (NSM_LOCAL_DNS_SERVER_ENABLED, the default) the container must bind port 53
# and rewrite /etc/resolv.conf: run it as root (`runAsUser: 0`), as upstream's cmd-nsc; as node, the forwarder
# logs one warning when a DNS config arrives and the connections carry on without it.
USER node
ENTRYPOINT ["node", "cmd-nsc/bin/cmd-nsc.js"]

FROM runtime AS cmd-nse-vl3
# Routes between its clients and its peers: the pod needs net.ipv4.ip_forward=1 (a pod-level sysctl, see
# deployments/examples/vl3/), which it cannot set itself as node. Its member-name server (NSM_DNS_ENABLED) binds
# port 53 on the endpoint's own vL3 address and puts that address on lo with iproute2: run it as root with
# NET_ADMIN and NET_BIND_SERVICE (the example does); as node it logs one warning and serves without names.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iproute2 \
 && rm -rf /var/lib/apt/lists/*
USER node
ENTRYPOINT ["node", "cmd-nse-vl3/bin/cmd-nse-vl3.js"]

FROM runtime AS cmd-traffic-controller
# The git target runs the git CLI (commits of each cluster's YAML tree); its work trees live in NSM_GIT_WORK_DIR,
# which must be writable by node. The Connect HTTP API listens on NSM_HTTP_LISTEN_ON (default 5080).
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/nsmts-traffic-controller && chown node:node /var/lib/nsmts-traffic-controller
USER node
EXPOSE 5090
ENTRYPOINT ["node", "cmd-traffic-controller/bin/cmd-traffic-controller.js"]

# --- the image: the stage of PROGRAM ---
FROM ${PROGRAM}
