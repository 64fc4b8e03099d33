import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { checkSchema } from '../db/catalog.js'
import { isDatabaseUnavailable, withDeadline } from '../db/errors.js'
import { writesImpossible } from '../domain/read-only.js'
import { PUBLIC } from '../schemas.js'

const HEALTH_JSON = 'application/health+json'

const Check = Type.Object({
  status: Type.Union([Type.Literal('pass'), Type.Literal('fail')]),
  output: Type.Optional(Type.String())
})

// warn, not fail: a read replica serves every read, so the API stays ready (200); only PATCH is refused.
const WritesCheck = Type.Object({
  status: Type.Union([Type.Literal('pass'), Type.Literal('warn'), Type.Literal('fail')]),
  output: Type.Optional(Type.String())
}, { description: 'warn when the database is read-only (a hot standby, or default_transaction_read_only on): reads are served, PATCH answers 503 database_read_only' })

export const ReadinessSchema = Type.Object({
  status: Type.Union([Type.Literal('pass'), Type.Literal('fail')]),
  checks: Type.Object({ database: Check, table: Check, policies: Check, writes: WritesCheck })
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
        checks: { database: { status: 'fail', output: 'the database did not answer in time or refused the connection' }, table: skipped, policies: skipped, writes: skipped }
      })
    }
    const check = (problems: string[]) => problems.length === 0
      ? { status: 'pass' as const }
      : { status: 'fail' as const, output: problems.join('; ') }
    const writes = report.readOnly === undefined ? { status: 'pass' as const } : { status: 'warn' as const, output: writesImpossible(report.readOnly) }
    const checks = { database: { status: 'pass' as const }, table: check(report.table), policies: check(report.policies), writes }
    const ready = report.table.length === 0 && report.policies.length === 0
    return await reply.code(ready ? 200 : 503).send({ status: ready ? 'pass' : 'fail', checks })
  })
}

export default healthRoutes
