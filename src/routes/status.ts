// For people and for READMEs: the status page (GET /status, and / sends there) and the verdict as a badge. Each shows
// the same verdict as GET /heartbeat/liveness, from the same read and the same function, and nothing more than it;
// each is public exactly when liveness is (LIVENESS_PUBLIC).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { deriveLiveness, type GraceSettings, type Liveness } from '../domain/liveness.js'
import { routeAccess } from '../http/access.js'
import { problem, ShieldsEndpointSchema } from '../http/schemas.js'
import { loadAssets } from '../status/assets.js'
import { badgeSvg, DEFAULT_BADGE_LABEL, shieldsEndpoint } from '../status/badge.js'
import { renderStatusPage } from '../status/page.js'

export interface StatusRoutesOptions {
  grace: GraceSettings
  livenessPublic: boolean
  /** The row is demo data: the page, the badge and the shields.io JSON say so. */
  demoData?: boolean
}

/** How often the page's script asks /heartbeat/liveness again. */
export const STATUS_REFRESH_SECONDS = 5

/** The page's own policy instead of the API's `default-src 'none'`: its script, style and icon from this origin only. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
  "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"
].join('; ')

/** Badges are fetched by image proxies (GitHub's camo) and shields.io: cacheable by them, but not for long. */
export const BADGE_CACHE_CONTROL = 'public, max-age=30'
/** Behind a token (LIVENESS_PUBLIC=false) a shared cache must never hand an answer to someone else: the browser's own only. */
export const PRIVATE_BADGE_CACHE_CONTROL = 'private, max-age=30'
/** The request headers that carry a credential: an answer that depends on them says so to every cache. */
export const CREDENTIAL_VARY = 'Authorization, apikey'

/** Appends to Vary rather than replacing what another hook (CORS's `Origin`) put there. */
function addVary (reply: FastifyReply, fields: string): void {
  const existing = reply.getHeader('vary')
  void reply.header('vary', existing === undefined || existing === '' ? fields : `${String(existing)}, ${fields}`)
}

const HTML = 'text/html; charset=utf-8'

const BadgeQuery = Type.Object({
  label: Type.Optional(Type.String({
    default: DEFAULT_BADGE_LABEL,
    minLength: 1,
    maxLength: 40,
    // Printable text with something other than spaces in it; the renderers escape it.
    pattern: '^(?=.*\\S)[^\\u0000-\\u001F\\u007F]+$',
    description: 'The badge\'s left-hand text, 1 to 40 printable characters'
  }))
})

const badgeHeaders = (livenessPublic: boolean): Record<string, { type: 'string', description: string }> => ({
  'Cache-Control': { type: 'string', description: livenessPublic ? BADGE_CACHE_CONTROL : PRIVATE_BADGE_CACHE_CONTROL },
  ...(livenessPublic ? {} : { Vary: { type: 'string', description: CREDENTIAL_VARY } }),
  'Cross-Origin-Resource-Policy': { type: 'string', description: 'cross-origin: a page on another site may show it' }
})

const statusRoutes: FastifyPluginAsyncTypebox<StatusRoutesOptions> = async (app, { grace, livenessPublic, demoData = false }) => {
  const assets = await loadAssets()
  const root = routeAccess(app, 'public')
  const verdictAccess = routeAccess(app, livenessPublic ? 'public' : 'select')
  const access = livenessPublic ? 'Public (LIVENESS_PUBLIC=true).' : 'Roles `authenticated` and `service_role`, as liveness (LIVENESS_PUBLIC=false).'
  const badgeCacheControl = livenessPublic ? BADGE_CACHE_CONTROL : PRIVATE_BADGE_CACHE_CONTROL
  /** An answer that needed a token varies with it. */
  const varyOnCredential = (reply: FastifyReply): void => { if (!livenessPublic) addVary(reply, CREDENTIAL_VARY) }

  // The one verdict, exactly as GET /heartbeat/liveness takes it with the configured grace.
  const verdict = async (request: FastifyRequest): Promise<Liveness> =>
    deriveLiveness(await app.store.read(verdictAccess.principal(request)), grace).liveness

  app.get('/', {
    schema: {
      operationId: 'getRoot',
      summary: 'Sends a browser to the status page',
      tags: ['status'],
      security: root.security,
      response: { 302: { description: 'To the status page (a relative Location, so a path prefix is kept)', headers: { Location: { type: 'string', description: 'status' } }, type: 'null' } }
    }
  }, async (_request, reply) => await reply.redirect('status', 302))

  app.get('/status', {
    schema: {
      operationId: 'getStatusPage',
      summary: 'The status page: the verdict for people',
      description: 'An HTML page with the liveness verdict in words and colour, the last and next poll as relative times, the ' +
        'grace, and links to /docs and /metrics. It shows no more than GET /heartbeat/liveness and works without JavaScript; ' +
        `with it, it updates itself from /heartbeat/liveness every ${STATUS_REFRESH_SECONDS} s. Always 200: the verdict is in the page. ${access}`,
      tags: ['status'],
      security: verdictAccess.security,
      response: {
        200: {
          description: 'The page',
          headers: { 'Cache-Control': { type: 'string', description: 'no-store' }, ...(livenessPublic ? {} : { Vary: { type: 'string', description: CREDENTIAL_VARY } }), 'Content-Security-Policy': { type: 'string', description: 'The page\'s own: script, style and icon from this origin only' } },
          content: { [HTML]: { schema: Type.String() } }
        },
        ...verdictAccess.refusals
      }
    },
    preHandler: verdictAccess.gate
  }, async (request, reply) => {
    const page = renderStatusPage(await verdict(request), {
      assets: { script: assets['status.js'].href, stylesheet: assets['status.css'].href, icon: assets['favicon.svg'].href },
      refreshSeconds: STATUS_REFRESH_SECONDS,
      demoData
    })
    varyOnCredential(reply)
    return await reply.type(HTML).headers({ 'cache-control': 'no-store', 'content-security-policy': STATUS_PAGE_CSP }).send(page)
  })

  for (const asset of Object.values(assets)) {
    app.get(`/${asset.path}`, { schema: { hide: true } }, async (_request, reply: FastifyReply) =>
      // The page links each file with its content hash: any change is a new URL, so this one can be kept for good.
      await reply.type(asset.type).header('cache-control', 'public, max-age=31536000, immutable').send(asset.body))
  }

  app.get('/heartbeat/badge.svg', {
    schema: {
      operationId: 'getBadge',
      summary: 'The verdict as a shields-style SVG badge',
      description: '`scheduler | alive` in green for pass, yellow for warn (late, paused, …), red for fail (stale, stopped, missing), ' +
        `grey for unknown; \`alive (demo)\` and so on when the verdict is about demo data (the embedded database). Always 200, so that an image is always drawn. ${access}`,
      tags: ['status'],
      security: verdictAccess.security,
      querystring: BadgeQuery,
      response: {
        200: { description: 'The badge', headers: badgeHeaders(livenessPublic), content: { 'image/svg+xml': { schema: Type.String() } } },
        400: problem('The label is not 1 to 40 printable characters'),
        ...verdictAccess.refusals
      }
    },
    preHandler: verdictAccess.gate
  }, async (request, reply) => {
    const svg = await badgeSvg(request.query.label ?? DEFAULT_BADGE_LABEL, await verdict(request), demoData)
    // Cross-origin: a README on another site shows it with <img>.
    varyOnCredential(reply)
    return await reply.type('image/svg+xml').headers({ 'cache-control': badgeCacheControl, 'cross-origin-resource-policy': 'cross-origin' }).send(svg)
  })

  app.get('/heartbeat/shields.json', {
    schema: {
      operationId: 'getShieldsEndpoint',
      summary: 'The verdict for shields.io\'s endpoint badge',
      description: `For \`https://img.shields.io/endpoint?url=…/heartbeat/shields.json\`. Always 200. ${access}`,
      tags: ['status'],
      security: verdictAccess.security,
      querystring: BadgeQuery,
      response: {
        200: { description: 'The badge\'s content', headers: badgeHeaders(livenessPublic), content: { 'application/json': { schema: Type.Ref(ShieldsEndpointSchema) } } },
        400: problem('The label is not 1 to 40 printable characters'),
        ...verdictAccess.refusals
      }
    },
    preHandler: verdictAccess.gate
  }, async (request, reply) => {
    varyOnCredential(reply)
    void reply.headers({ 'cache-control': badgeCacheControl, 'cross-origin-resource-policy': 'cross-origin' })
    return shieldsEndpoint(request.query.label ?? DEFAULT_BADGE_LABEL, await verdict(request), demoData)
  })
}

export default statusRoutes
