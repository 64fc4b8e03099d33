// The CLI with a secret API key (--api-key / EVA_HEARTBEAT_API_KEY, issue 10) against the real app: the key pauses,
// the audit line names it, and a key beside a token is a usage error rather than a request the API would refuse.
import t from 'tap'
import { runCli } from '../../src/cli/commands.js'
import { bearer, rowText, TEST_SECRET, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { startAppWith } from '../helpers/jwks.js'

const KEY = 'sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz'
const db = await startTestDatabase()
t.teardown(db.close)
const logs: string[] = []
const app = await startAppWith(t, db, { JWT_SECRET: TEST_SECRET, SERVICE_API_KEYS: `ops-script:${KEY}`, LOG_LEVEL: 'info' }, {},
  { logStream: { write: (line) => { logs.push(line) } } })
const url = await app.listen({ host: '127.0.0.1', port: 0 })

async function run (args: string[], env: Record<string, string> = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await runCli(args, { EVA_HEARTBEAT_URL: url, ...env }, { stdout: (text) => { stdout += text }, stderr: (text) => { stderr += text } })
  return { code, stdout, stderr }
}

t.test('--api-key and EVA_HEARTBEAT_API_KEY', async (t) => {
  await writeRow(db.admin)
  let result = await run(['pause', '--reason', 'incident 7', '--api-key', KEY])
  t.equal(result.code, 0, result.stderr)
  t.match(await rowText(db.admin), /"paused_reason":"incident 7","status":"stopping"/)
  result = await run(['resume'], { EVA_HEARTBEAT_API_KEY: KEY })
  t.equal(result.code, 0, result.stderr)
  t.match(await rowText(db.admin), /"status":"running"/)
  result = await run(['status', '--json'], { EVA_HEARTBEAT_API_KEY: KEY })
  t.equal(result.code, 0, 'status reads with the key')
  const who = logs.map((line) => JSON.parse(line) as { audit?: { who: string } }).flatMap((line) => line.audit === undefined ? [] : [line.audit.who])
  t.same(who, ['apikey:ops-script', 'apikey:ops-script'], 'the audit lines name the key')
  t.notOk(logs.some((line) => line.includes(KEY.slice(10))), 'the key is in no log line')
})

t.test('a key and a token together: a usage error (exit 2), nothing sent', async (t) => {
  const token = (await bearer('service_role')).authorization.slice(7)
  let result = await run(['pause', '--reason', 'x', '--api-key', KEY, '--token', token])
  t.equal(result.code, 2)
  t.match(result.stderr, /give one token or key, not --token and --api-key/)
  result = await run(['pause', '--reason', 'x'], { EVA_HEARTBEAT_API_KEY: KEY, EVA_HEARTBEAT_TOKEN: token })
  t.equal(result.code, 2)
  t.match(result.stderr, /EVA_HEARTBEAT_TOKEN and EVA_HEARTBEAT_API_KEY are both set/)
  result = await run(['pause', '--reason', 'option wins', '--api-key', KEY], { EVA_HEARTBEAT_TOKEN: token })
  t.equal(result.code, 0, 'an option beats the environment')
  result = await run(['pause', '--reason', 'x', '--api-key', 'sb_secret_WrongKey0123456789abcdef'])
  t.equal(result.code, 1)
  t.match(result.stderr, /401 invalid_api_key/)
  result = await run(['status'])
  t.equal(result.code, 2)
  t.match(result.stderr, /or a secret API key: --api-key-file PATH or EVA_HEARTBEAT_API_KEY/)
})

t.test('a credential a header cannot carry: a usage error (exit 2) that names where it came from, never the value', async (t) => {
  await writeRow(db.admin)
  const before = await rowText(db.admin)
  const twoLines = `${KEY}\nsb_secret_SecondLineOfTheFile0123`
  const cases: Array<[string[], Record<string, string>, string]> = [
    [['pause', '--reason', 'x', '--api-key', twoLines], {}, '--api-key'],
    [['pause', '--reason', 'x', '--token', 'eyJhbGciOiJIUzI1NiJ9.é.sig'], {}, '--token'],
    [['pause', '--reason', 'x'], { EVA_HEARTBEAT_API_KEY: twoLines }, 'EVA_HEARTBEAT_API_KEY'],
    [['status'], { EVA_HEARTBEAT_TOKEN: 'eyJ0eXAi OiJKV1Qi' }, 'EVA_HEARTBEAT_TOKEN']
  ]
  for (const [args, env, from] of cases) {
    const result = await run(args, env)
    t.equal(result.code, 2, `${from}: exit 2`)
    t.match(result.stderr, `${from} holds a character a header cannot carry`, `${from}: says what is wrong and where`)
    t.notMatch(result.stderr, /cannot reach/, `${from}: not reported as the network`)
    t.notMatch(result.stderr, /N7UND0Ug|SecondLine|eyJ/, `${from}: no part of the value`)
  }
  t.equal(await rowText(db.admin), before, 'nothing was sent')
  const trailing = await run(['pause', '--reason', 'one-line file', '--api-key', `${KEY}\n`])
  t.equal(trailing.code, 0, 'a key file\'s final newline alone is trimmed, and the key works')
})
