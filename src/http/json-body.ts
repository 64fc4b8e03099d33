// JSON request bodies read as UTF-8, strictly. Fastify's own parser decodes the bytes with Buffer#toString, which
// turns every invalid UTF-8 sequence into U+FFFD: a body with a stray Latin-1 byte in paused_reason was stored with
// a replacement character instead of what was sent. RFC 8259 requires UTF-8, so such a body is malformed: 400.
import type { FastifyInstance } from 'fastify'
import { ProblemError } from './problems.js'

/**
 * Refuses invalid UTF-8 (overlong forms, encoded surrogates, truncated sequences, stray bytes). A leading BOM is kept
 * here and dropped by the JSON parser, as before: one BOM is accepted (RFC 8259 §8.1 lets a parser ignore it), two are not.
 */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

export const invalidUtf8 = (): ProblemError =>
  new ProblemError(400, 'malformed_json', 'Malformed JSON', 'The body is not valid UTF-8; JSON must be sent as UTF-8.')

/**
 * Registers, in `app`'s scope only, a parser for each media type that reads the body as bytes, refuses invalid UTF-8,
 * and then parses it with Fastify's default JSON parser (which refuses __proto__ and constructor.prototype keys).
 * The media type's charset parameter, if any, is ignored: JSON is UTF-8.
 */
export function useStrictJsonBodies (app: FastifyInstance, mediaTypes: readonly string[]): void {
  const parseJson = app.getDefaultJsonParser('error', 'error')
  for (const mediaType of mediaTypes) {
    app.addContentTypeParser(mediaType, { parseAs: 'buffer' }, (request, body, done) => {
      let text: string
      try {
        text = utf8.decode(body as Buffer)
      } catch {
        done(invalidUtf8(), undefined)
        return
      }
      parseJson(request, text, done)
    })
  }
}
