# opsbot: the bot process (`node src/main.ts`, Node 24's type stripping, no build step).
#   podman build --format docker -t opsbot .      (docker build -t opsbot . works as well)
# `--format docker` matters with podman: the OCI format drops HEALTHCHECK.
# Secrets come only at run time (env / env_file); the ops file is mounted at /config/opsbot.yaml;
# everything opsbot writes lives in the /data volume. See README "Running in a container".

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Runtime dependencies only (optional ones included: platform binaries come that way).
# --ignore-scripts: the only install scripts build ssh2's optional native crypto binding and
# cpu-features, which would need python, make and a compiler (no build tools here); ssh2 falls
# back to Node's own crypto without them. Type declarations and source maps are never loaded at
# run time (the app's own .ts files are in src/, not here).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
	&& npm cache clean --force \
	&& find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete

FROM node:24-slim
ENV NODE_ENV=production \
	OPSBOT_CONFIG=/config/opsbot.yaml \
	NODE_COMPILE_CACHE=/var/cache/opsbot
WORKDIR /app
# Code and dependencies belong to root and are read-only to the bot; only /data is writable.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json deploy-commands.ts ./
COPY bin ./bin
COPY src ./src
# stateDir defaults to ./data (= /app/data): link it to the volume so the default and an explicit
# `stateDir: /data` both land there.
RUN mkdir -p /data /config /var/cache/opsbot \
	&& chown node:node /data /var/cache/opsbot \
	&& ln -s /data /app/data
# The base image's unprivileged user (uid 1000).
USER node
# Node's compile cache, warmed here with the modules a start loads, so the first start is as lean as
# any later one (25 MiB less idle RSS; bench/RESULTS.md "Memory"). Owned by node: it adds what loads later.
RUN node -e 'const m = require("node:module"); m.enableCompileCache(); import("./src/bot.ts").then(() => m.flushCompileCache())'
VOLUME ["/data"]
EXPOSE 9095
# node runs as PID 1 with no init: main.ts installs SIGTERM/SIGINT handlers (PID 1 gets no
# default signal actions) and starts no child processes, so there is nothing to reap.
# SIGTERM: stop taking webhooks, finish replies in flight, close, exit 0; main.ts gives up after 15 s.
STOPSIGNAL SIGTERM
# /healthz of the webhook receiver, at the port the mounted ops file gives (alerts.listen),
# checked with node itself (no curl in the image).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
	CMD ["node", "-e", "const l = require('yaml').parse(require('fs').readFileSync(process.env.OPSBOT_CONFIG, 'utf8'))?.alerts?.listen ?? {}; const host = [undefined, '0.0.0.0', '::'].includes(l.host) ? '127.0.0.1' : l.host; const req = require('http').get({ host, port: l.port ?? 9095, path: '/healthz', timeout: 4000 }, (res) => process.exit(res.statusCode === 200 ? 0 : 1)); req.on('timeout', () => req.destroy(new Error('no answer within 4 s'))); req.on('error', (err) => { console.error(`healthz on ${host}:${l.port ?? 9095}: ${err.code ?? err.message}`); process.exit(1); });"]
# npm start's command line (package.json): the V8 flag bounds the young generation (see RESULTS "Memory").
CMD ["node", "--max-semi-space-size=4", "src/main.ts"]
