// Where the CLI takes its token or key from, against the real app: a file (--token-file, --api-key-file) or the
// environment, which no other local user can read, or the command line, which every local user sees in ps (warned).
import { execFile } from 'node:child_process'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { runCli } from '../../src/cli/commands.js'
import { bearer, rowText, TEST_SECRET, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { startAppWith } from '../helpers/jwks.js'

const KEY = 'sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz'
const db = await startTestDatabase()
t.teardown(db.close)
const app = await startAppWith(t, db, { JWT_SECRET: TEST_SECRET, SERVICE_API_KEYS: `ops-script:${KEY}` })
const url = await app.listen({ host: '127.0.0.1', port: 0 })
const TOKEN = (await bearer('service_role', { sub: 'ops' })).authorization.slice(7)
const dir = await mkdtemp(path.join(tmpdir(), 'eva-cli-credentials-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })

interface Run { code: number, stdout: string, stderr: string }

async function run (args: string[], env: Record<string, string> = {}): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const code = await runCli(args, { EVA_HEARTBEAT_URL: url, ...env }, { stdout: (text) => { stdout += text }, stderr: (text) => { stderr += text } })
  return { code, stdout, stderr }
}

async function file (name: string, content: string): Promise<string> {
  const where = path.join(dir, name)
  await writeFile(where, content, { mode: 0o600 })
  return where
}

const paused = async (): Promise<string | undefined> => (JSON.parse(await rowText(db.admin) ?? '{}') as { paused_reason?: string }).paused_reason

t.test('--token-file and --api-key-file: the file less one final newline, and no warning', async (t) => {
  await writeRow(db.admin)
  let result = await run(['pause', '--reason', 'from a token file', '--token-file', await file('token', `${TOKEN}\n`)])
  t.equal(result.code, 0, result.stderr)
  t.equal(result.stderr, '', 'nothing on stderr')
  t.equal(await paused(), 'from a token file')
  result = await run(['pause', '--reason', 'from a key file', '--api-key-file', await file('key', `${KEY}\r\n`)])
  t.equal(result.code, 0, result.stderr)
  t.equal(result.stderr, '')
  t.equal(await paused(), 'from a key file')
  result = await run(['status', '--json', '--api-key-file', await file('key-bare', KEY)], { EVA_HEARTBEAT_TOKEN: 'not-used' })
  t.equal(result.code, 0, 'no final newline is fine too, and the file beats the environment')
})

t.test('the environment: EVA_HEARTBEAT_TOKEN and EVA_HEARTBEAT_API_KEY, and no warning', async (t) => {
  await writeRow(db.admin)
  let result = await run(['pause', '--reason', 'from the environment'], { EVA_HEARTBEAT_TOKEN: TOKEN })
  t.equal(result.code, 0, result.stderr)
  t.equal(result.stderr, '')
  t.equal(await paused(), 'from the environment')
  result = await run(['resume'], { EVA_HEARTBEAT_API_KEY: KEY })
  t.equal(result.code, 0, result.stderr)
  t.equal(result.stderr, '')
})

t.test('--token and --api-key on the command line work, with one warning line that does not show the value', async (t) => {
  await writeRow(db.admin)
  let result = await run(['pause', '--reason', 'from an argument', '--token', TOKEN])
  t.equal(result.code, 0)
  t.equal(result.stderr, 'eva-heartbeat: warning: --token on the command line is visible to every local user (ps); use --token-file PATH or EVA_HEARTBEAT_TOKEN\n')
  t.equal(await paused(), 'from an argument')
  result = await run(['check', `--api-key=${KEY}`])
  t.equal(result.code, 1, 'check: the paused row is a WARNING, its line on stdout as before')
  t.match(result.stdout, /^HEARTBEAT WARNING - paused/)
  t.equal(result.stderr, 'eva-heartbeat: warning: --api-key on the command line is visible to every local user (ps); use --api-key-file PATH or EVA_HEARTBEAT_API_KEY\n')
  result = await run(['resume', '--api-key', KEY, '--timeout', '0'])
  t.equal(result.code, 2, 'a usage error before anything is sent')
  t.notMatch(result.stderr, /warning/, 'then the error alone, one line')
})

t.test('a file that is missing, unreadable, empty or not one line: a usage error naming the file, never its contents', async (t) => {
  await writeRow(db.admin)
  const before = await rowText(db.admin)
  const directory = path.join(dir, 'a-directory')
  await mkdir(directory)
  const cases: Array<[string, string, RegExp]> = [
    ['--token-file', path.join(dir, 'missing'), /: no such file/],
    ['--api-key-file', directory, /: a directory/],
    ['--token-file', await file('empty', ''), / is empty/],
    ['--api-key-file', await file('newline', '\n'), / is empty/],
    ['--api-key-file', await file('two-lines', `${KEY}\nsb_secret_SecondLineOfTheFile0123\n`), / holds a character a header cannot carry/],
    ['--token-file', await file('spaced', ` ${TOKEN} \n`), / holds a character a header cannot carry/],
    ['--token-file', '/dev/zero', / is larger than 64 KiB: not a token or key/]
  ]
  for (const [option, where, why] of cases) {
    const name = `${option} ${path.basename(where)}`
    const result = await run(['pause', '--reason', 'x', option, where])
    t.equal(result.code, 2, `${name}: exit 2`)
    t.match(result.stderr, /^eva-heartbeat: [^\n]+ \(eva-heartbeat --help for usage\)\n$/, `${name}: one line`)
    t.ok(result.stderr.includes(`${option} ${JSON.stringify(where)}`), `${name}: names the file`)
    t.match(result.stderr, why, `${name}: says what is wrong`)
    t.notMatch(result.stderr, /N7UND0Ug|SecondLine|eyJ/, `${name}: no part of the contents`)
  }
  t.equal(await rowText(db.admin), before, 'nothing was sent')
})

t.test('a file this user may not read: a usage error naming it', async (t) => {
  const secret = await file('root-only', `${KEY}\n`)
  let result: Run
  await chmod(secret, 0o000)
  if (process.getuid?.() === 0) {
    // Root reads any file: the CLI runs without the capabilities that let it (setpriv, from util-linux), so the
    // file's mode applies to it as to anyone, wherever the checkout is (another user could not enter a mode-700 one).
    const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))
    result = await new Promise((resolve) => {
      execFile('setpriv', ['--bounding-set', '-dac_override,-dac_read_search', '--', process.execPath, '--import', 'tsx', cli, 'status', '--api-key-file', secret],
        { env: { PATH: process.env.PATH ?? '', EVA_HEARTBEAT_URL: url }, timeout: 60_000 }, (error, stdout, stderr) => {
          resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr })
        })
    })
  } else {
    result = await run(['status', '--api-key-file', secret])
  }
  t.equal(result.code, 2, 'exit 2')
  t.equal(result.stderr, `eva-heartbeat: --api-key-file ${JSON.stringify(secret)}: permission denied (eva-heartbeat --help for usage)\n`)
})

t.test('two of --token, --token-file, --api-key, --api-key-file: a usage error, nothing sent', async (t) => {
  const tokenFile = await file('token-2', TOKEN)
  let result = await run(['resume', '--token-file', tokenFile, '--api-key', KEY])
  t.equal(result.code, 2)
  t.match(result.stderr, /^eva-heartbeat: give one token or key, not --token-file and --api-key \(/)
  result = await run(['resume', '--token-file', tokenFile, '--api-key-file', tokenFile])
  t.equal(result.code, 2)
  t.match(result.stderr, /give one token or key, not --token-file and --api-key-file/)
})

t.test('no token: the hint says "an authenticated" and how to mint one where the CLI runs', async (t) => {
  let result = await run(['status'])
  t.equal(result.code, 2)
  t.match(result.stderr, /^eva-heartbeat: status needs an authenticated or service_role token: --token-file PATH or EVA_HEARTBEAT_TOKEN \(eva-heartbeat token --role authenticated, in a checkout npm run -s token -- --role authenticated, mints one for the embedded default\), or a secret API key: --api-key-file PATH or EVA_HEARTBEAT_API_KEY/)
  // Under `npm run -s cli` in this checkout (npm sets npm_package_name), only the command that exists there.
  result = await run(['pause', '--reason', 'x'], { npm_package_name: 'eva-heartbeat-api' })
  t.equal(result.code, 2)
  t.match(result.stderr, /^eva-heartbeat: pause needs a service_role token: --token-file PATH or EVA_HEARTBEAT_TOKEN \(npm run -s token -- --role service_role mints one for the embedded default\)/)
})
