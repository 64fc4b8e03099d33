// One error handler for the whole app: every failure becomes application/problem+json with a stable code, and
// nothing internal (stack, SQL, token) reaches the answer.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { isDatabaseReadOnly, isDatabaseUnavailable } from '../db/errors.js'
import { whyNotWritable } from '../domain/patch.js'
import { AuthRejection } from '../auth/rejection.js'
import { authProblem, databaseReadOnly, databaseUnavailable, ProblemError } from '../http/problems.js'

type ValidationError = NonNullable<FastifyError['validation']>[number]

function validationProblem (error: FastifyError): ProblemError {
  const first = error.validation?.[0] as ValidationError | undefined
  const where = error.validationContext ?? 'request'
  if (first?.keyword === 'additionalProperties') {
    const name = String((first.params as { additionalProperty?: unknown }).additionalProperty)
    const why = whyNotWritable(name)
    return new ProblemError(400, 'unknown_field', 'Unknown field', `${where} property "${name}" may not be sent: it ${why}.`)
  }
  const path = first?.instancePath !== undefined && first.instancePath !== '' ? first.instancePath.slice(1).replace(/\//g, '.') : ''
  const subject = path === '' ? where : `${where} ${path}`
  const allowed = first?.keyword === 'enum' ? (first.params as { allowedValues?: unknown }).allowedValues : undefined
  const values = Array.isArray(allowed) ? `: ${allowed.map((value) => JSON.stringify(value)).join(', ')}` : ''
  return new ProblemError(400, 'invalid_request', 'Invalid request', `${subject} ${first?.message ?? 'is not valid'}${values}.`)
}

function clientProblem (error: FastifyError): ProblemError {
  const status = error.statusCode ?? 400
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ProblemError(415, 'unsupported_media_type', 'Unsupported media type', 'Send the body as application/json or application/merge-patch+json.')
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ProblemError(413, 'body_too_large', 'Body too large', 'The request body is larger than this endpoint accepts.')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ProblemError(400, 'malformed_json', 'Malformed JSON', 'The body is empty; send a JSON object.')
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      // The parser also refuses prototype-poisoning keys (__proto__, constructor.prototype) and says no more than this.
      return new ProblemError(400, 'malformed_json', 'Malformed JSON', 'The body is not valid JSON, or it holds a __proto__ or constructor.prototype key.')
    default:
      if (error instanceof SyntaxError || error.code === undefined) {
        return new ProblemError(400, 'malformed_json', 'Malformed JSON', 'The body is not valid JSON.')
      }
      return new ProblemError(status, 'bad_request', 'Bad request', 'The request could not be processed as sent.')
  }
}

export function toProblemError (error: FastifyError): ProblemError | undefined {
  if (error instanceof ProblemError) return error
  if (error instanceof AuthRejection) return authProblem(error)
  if (error.validation !== undefined) return validationProblem(error)
  if (isDatabaseReadOnly(error)) return databaseReadOnly()
  if (isDatabaseUnavailable(error)) return databaseUnavailable()
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) return clientProblem(error)
  return undefined
}

export async function sendProblem (reply: FastifyReply, problem: ProblemError): Promise<FastifyReply> {
  return await reply.code(problem.status).headers(problem.headers).type('application/problem+json').send(problem.toProblem())
}

export default fp(async (app) => {
  app.setErrorHandler(async (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const problem = toProblemError(error)
    if (problem !== undefined) {
      // Refusals are routine: logged below the audit lines (info), and never with the request's headers (they hold the
      // token); `who` is the verified subject when authentication got that far.
      request.log[problem.status >= 500 ? 'warn' : 'debug']({ code: problem.code, status: problem.status, who: request.principal?.subject }, problem.detail)
      return await sendProblem(reply, problem)
    }
    request.log.error({ err: error }, 'unhandled error')
    return await sendProblem(reply, new ProblemError(500, 'internal_error', 'Internal error', 'The request failed on our side; it has been logged.'))
  })
  app.setNotFoundHandler(async (request, reply) => {
    return await sendProblem(reply, new ProblemError(404, 'not_found', 'Not found', `There is no ${request.method} ${request.url.split('?')[0] ?? ''} here.`))
  })
}, { name: 'errors' })
