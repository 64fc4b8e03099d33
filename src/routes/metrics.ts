import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { deriveLiveness, type GraceSettings } from '../domain/liveness.js'
import { schedulerSample } from '../domain/metrics.js'
import { routeAccess } from '../http/access.js'

export interface MetricsRoutesOptions {
  grace: GraceSettings
  metricsPublic: boolean
}

export const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8'

const metricsRoutes: FastifyPluginAsyncTypebox<MetricsRoutesOptions> = async (app, { grace, metricsPublic }) => {
  const access = routeAccess(app, metricsPublic ? 'public' : 'select')
  app.get('/metrics', {
    schema: {
      operationId: 'getMetrics',
      summary: 'Prometheus metrics: the scheduler\'s heartbeat and this API\'s own',
      description: 'Prometheus text exposition format 0.0.4. Every scrape reads the row once and takes the same verdict as ' +
        '/heartbeat. With the database unreachable the answer is still 200, with `eva_heartbeat_api_database_up 0` and ' +
        'the verdict state `unknown`. ' +
        (access.public ? 'Public (METRICS_PUBLIC=true).' : 'Roles `authenticated` and `service_role` (METRICS_PUBLIC=false).'),
      tags: ['operations'],
      security: access.security,
      response: {
        200: { description: 'The metrics', content: { [PROMETHEUS_TEXT]: { schema: Type.String() } } },
        ...access.refusals
      }
    },
    preHandler: access.gate
  }, async (request, reply) => {
    // The same read and the same verdict as the JSON routes: a scrape never takes a verdict of its own.
    const reading = await app.store.read(access.principal(request))
    const { liveness } = deriveLiveness(reading, grace)
    app.metrics.observeScheduler(schedulerSample(reading, liveness))
    const body = await app.metrics.registry.metrics()
    return await reply.type(app.metrics.registry.contentType).header('cache-control', 'no-store').send(body)
  })
}

export default metricsRoutes
