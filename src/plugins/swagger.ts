// The OpenAPI document is generated from the route schemas; registered before the routes so it sees them all.
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'

export const API_VERSION = '1.0.0'

/**
 * Fastify answers HEAD on every GET route with the GET's own schema, operationId included; operationIds must be
 * unique, and @fastify/swagger's `getLiveness-head` makes a poor method name in a generated client: headLiveness.
 */
export function headOperationId (getOperationId: string): string {
  return getOperationId.startsWith('get') ? `head${getOperationId.slice(3)}` : `${getOperationId}Head`
}

export default fp(async (app) => {
  await app.register(swagger, {
    exposeHeadRoutes: true,
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'eva-heartbeat-api',
        version: API_VERSION,
        description: 'Monitoring API over the EVA scheduler heartbeat row: a derived liveness verdict, the row, and an admin PATCH (service_role) to pause or resume the scheduler.',
        license: { name: 'MIT', identifier: 'MIT' }
      },
      tags: [
        { name: 'heartbeat', description: 'The heartbeat row and its verdict' },
        { name: 'health', description: 'This API\'s own health' },
        { name: 'operations', description: 'Prometheus metrics' },
        { name: 'status', description: 'The verdict for people: a status page and badges' }
      ],
      // Relative: the API is described wherever it is served from (the document is served by the API itself).
      servers: [{ url: '/', description: 'This API' }],
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description: 'A Supabase JWT (HS256 with JWT_SECRET, ES256/RS256 from JWKS_URL); its role claim decides what it may do. ' +
              'A secret API key (sb_secret_…) may be sent this way too.'
          },
          apiKeyAuth: {
            type: 'apiKey',
            in: 'header',
            name: 'apikey',
            description: 'A secret API key (sb_secret_…) configured in SERVICE_API_KEYS: acts as service_role. ' +
              'A publishable key (sb_publishable_…) grants what role anon may, which is nothing here. ' +
              'Beside an Authorization header, the apikey must be the same key or not a secret key.'
          }
        }
      }
    },
    transform: ({ schema, url, route }) => {
      const operationId = (schema as { operationId?: unknown } | undefined)?.operationId
      if (route.method !== 'HEAD' || typeof operationId !== 'string') return { schema, url }
      return { schema: { ...schema, operationId: headOperationId(operationId.replace(/-head$/, '')) }, url }
    },
    refResolver: {
      // Component names are the schemas' $id, so the document's names stay stable.
      buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}`
    }
  })
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list', deepLinking: false },
    // The UI's own Content-Security-Policy (its scripts and styles from /docs) instead of the API's `default-src 'none'`,
    // less upgrade-insecure-requests: on plain HTTP (the loopback default) it would send the browser to https.
    staticCSP: true,
    transformStaticCSP: (policy) => policy.replace(/\s*upgrade-insecure-requests;?/, '')
  })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}, { name: 'swagger' })
