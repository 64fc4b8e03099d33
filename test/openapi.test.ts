import { readFile } from 'node:fs/promises'
import { compileErrors, validate } from '@readme/openapi-parser'
import t from 'tap'
import { generateOpenApi, OPENAPI_FILE } from '../scripts/openapi.js'

const generated = await generateOpenApi()
const doc = JSON.parse(generated) as {
  openapi: string
  info: { version: string }
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>
}

t.test('the generated document is valid OpenAPI 3.1 (a real validator)', async (t) => {
  const result = await validate(structuredClone(doc) as never)
  t.ok(result.valid, result.valid ? 'valid' : compileErrors(result))
  t.equal(doc.openapi, '3.1.0')
  t.equal(doc.info.version, '1.0.0', 'info.version is pinned')
})

t.test('the committed openapi/openapi.json is what the code generates', async (t) => {
  t.equal(await readFile(OPENAPI_FILE, 'utf8'), generated, 'run `npm run openapi` after changing a route schema')
})

t.test('every GET is documented with HEAD, and errors as problem+json', async (t) => {
  for (const [path, operations] of Object.entries(doc.paths)) {
    if (operations.get === undefined) continue
    t.ok(operations.head, `${path} documents HEAD`)
    for (const [status, response] of Object.entries(operations.get.responses)) {
      if (Number(status) >= 400 && path.startsWith('/heartbeat') && !(path === '/heartbeat/liveness' && status === '503')) {
        t.ok(response.content?.['application/problem+json'], `${path} ${status} is problem+json`)
      }
    }
  }
  t.ok(doc.paths['/heartbeat/liveness']?.get?.responses['503']?.content?.['application/health+json'], 'liveness 503 is health+json')
})
