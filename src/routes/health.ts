import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { checkSchema } from '../db/catalog.js'
import { isDatabaseUnavailable, withDeadline } from '../db/errors.js'
import { PUBLIC } from '../schemas.js'

const HEALTH_JSON = 'application/health+json'

const Check = Type.Object({
  status: Type.Union([Type.Literal('pass'), Type.Literal('fail')]),
  output: Type.Optional(Type.String())
})

export const ReadinessSchema = Type.Object({
  status: Type.Union([Type.Literal('pass'), Type.Literal('fail')]),
  checks: Type.Object({ database: Check, table: Check, policies: Check })
}, { $id: 'Readiness', description: 'Whether this API can serve: database reachable, table and policies as expected' })

const healthRoutes: FastifyPluginAsyncTypebox<{ statementTimeoutMs: number }> = async (app, { statementTimeoutMs }) => {
  // A little over the server's statement timeout, so that the server's own cancellation normally wins.
  const deadlineMs = statementTimeoutMs + 500
  app.get('/livez', {
    schema: {
      operationId: 'getLivez',
      summary: 'The API process is up (no database call)',
      tags: ['health'],
      security: PUBLIC,
      response: { 200: { description: 'Up', content: { [HEALTH_JSON]: { schema: Type.Object({ status: Type.Literal('pass') }) } } } }
    }
  }, async (_request, reply) => {
    void reply.type(HEALTH_JSON).header('cache-control', 'no-store')
    return { status: 'pass' as const }
  })

  app.get('/readyz', {
    schema: {
      operationId: 'getReadyz',
      summary: 'Database reachable, table shape as expected, policies as mirrored',
      tags: ['health'],
      security: PUBLIC,
      response: {
        200: { description: 'Ready', content: { [HEALTH_JSON]: { schema: Type.Ref(ReadinessSchema) } } },
        503: { description: 'Not ready: the failing check says why', content: { [HEALTH_JSON]: { schema: Type.Ref(ReadinessSchema) } } }
      }
    }
  }, async (_request, reply) => {
    void reply.type(HEALTH_JSON).header('cache-control', 'no-store')
    let report
    try {
      report = await withDeadline(checkSchema(app.sql, { statementTimeoutMs }), deadlineMs)
    } catch (error) {
      if (!isDatabaseUnavailable(error)) throw error
      const skipped = { status: 'fail' as const, output: 'not checked: the database is unavailable' }
      return await reply.code(503).header('retry-after', '5').send({
        status: 'fail',
        checks: { database: { status: 'fail', output: 'the database did not answer in time or refused the connection' }, table: skipped, policies: skipped }
      })
    }
    const check = (problems: string[]) => problems.length === 0
      ? { status: 'pass' as const }
      : { status: 'fail' as const, output: problems.join('; ') }
    const checks = { database: { status: 'pass' as const }, table: check(report.table), policies: check(report.policies) }
    const ready = report.table.length === 0 && report.policies.length === 0
    return await reply.code(ready ? 200 : 503).send({ status: ready ? 'pass' : 'fail', checks })
  })
}

export default healthRoutes
