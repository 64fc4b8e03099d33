// The ops CLI's commands. `runCli` takes the arguments and environment and writes through `io`, so it runs the
// same under the `eva-heartbeat` bin and in tests; it talks to the HTTP API only, never to the database.
import { open } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import type { BreakerState } from '../domain/heartbeat.js'
import { breakerBody, pauseBody, RESUME_BODY, type HeartbeatPatch } from '../domain/patch.js'
import { ApiClient, CliError, describeFailure, EXIT_FAILED, EXIT_OK, EXIT_USAGE, usage, type ApiAnswer } from './client.js'
import { checkResult, formatChange, formatStatus, isHeartbeatAnswer, isLiveness, unknownResult, type CheckResult } from './format.js'
import { changeAndWait, DEFAULT_WAIT_SECONDS, MAX_WAIT_SECONDS } from './wait.js'
import { WAIT_EXIT_CODES, type WaitGoal } from './wait-decision.js'
import { waitReport, waitSummary } from './wait-report.js'

export const DEFAULT_URL = 'http://127.0.0.1:3000'

export const USAGE = `usage: eva-heartbeat <command> [options]

commands:
  status                         the verdict and the row (needs a token)
  check                          one line for monitoring; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
  pause --reason TEXT [--wait [SECONDS]]
                                 ask the scheduler to pause: status stopping with the reason (service_role)
  resume [--wait [SECONDS]]      status running, reason cleared (service_role)
  breaker open|close|half-open   set circuit_breaker_state (service_role)
  token --role ROLE [--ttl SECONDS] [--sub SUBJECT]
                                 a token signed with JWT_SECRET, or the embedded default's development secret

options:
  --url URL          the API (default $EVA_HEARTBEAT_URL, else ${DEFAULT_URL})
  --token-file PATH  read the bearer token from a file (default $EVA_HEARTBEAT_TOKEN)
  --api-key-file PATH
                     read a secret API key, sb_secret_…, from a file (default $EVA_HEARTBEAT_API_KEY), instead of a token
  --token JWT, --api-key KEY
                     the same on the command line, where every local user sees it in ps (warned)
  --if-match ETAG    pause/resume/breaker: change only while the heartbeat is as last read (412 otherwise)
  --grace SECONDS    status/check: the grace for this verdict instead of the server's rule
  --json             print the API's JSON answer instead of text (with --wait: one object about the wait)
  --timeout SECONDS  give up waiting for the API after this long (default 10)
  --wait [SECONDS]   pause/resume: then watch the row until the scheduler's own write shows it took the change
                     (default ${DEFAULT_WAIT_SECONDS} s); exit 0 it did, 1 it (or another operator) undid it,
                     2 no such write in time, 3 the API or its database could not be reached
  -h, --help         this text

Other commands exit 0 on success, 1 when the API refused or could not be reached, 2 on a usage error
(pause/resume --wait: as above); errors are one line on stderr. A redirect is never followed: it is an error that
names where it pointed (exit 1; check 3 UNKNOWN; --wait 3).`

export interface CliIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
}

type Env = Record<string, string | undefined>

const OPTIONS = {
  url: { type: 'string' },
  token: { type: 'string' },
  'token-file': { type: 'string' },
  'api-key': { type: 'string' },
  'api-key-file': { type: 'string' },
  'if-match': { type: 'string' },
  grace: { type: 'string' },
  json: { type: 'boolean', default: false },
  timeout: { type: 'string' },
  reason: { type: 'string' },
  role: { type: 'string' },
  ttl: { type: 'string' },
  sub: { type: 'string' },
  wait: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false }
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS, allowPositionals: true, strict: true }>>['values']

/** Which options each command takes; anything else is a usage error rather than silently ignored. */
const CREDENTIALS = ['token', 'token-file', 'api-key', 'api-key-file'] as const
const ACCEPTS: Record<string, ReadonlyArray<keyof typeof OPTIONS>> = {
  status: ['url', ...CREDENTIALS, 'grace', 'json', 'timeout'],
  check: ['url', ...CREDENTIALS, 'grace', 'json', 'timeout'],
  pause: ['url', ...CREDENTIALS, 'if-match', 'json', 'timeout', 'reason', 'wait'],
  resume: ['url', ...CREDENTIALS, 'if-match', 'json', 'timeout', 'wait'],
  breaker: ['url', ...CREDENTIALS, 'if-match', 'json', 'timeout'],
  token: ['role', 'ttl', 'sub', 'json']
}

const BREAKER_ARGS: Readonly<Record<string, BreakerState>> = { open: 'OPEN', close: 'CLOSED', closed: 'CLOSED', 'half-open': 'HALF_OPEN' }

function positiveSeconds (name: string, text: string | undefined, fallback: number, { zero = false, max = Infinity } = {}): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || (!zero && value === 0) || value > max) {
    throw usage(`--${name} must be a number of seconds${zero ? ' from 0' : ' above 0'}${Number.isFinite(max) ? ` to ${max}` : ''} (got ${JSON.stringify(text)})`)
  }
  return value
}

const given = (text: string | undefined): string | undefined => text === undefined || text.trim() === '' ? undefined : text.trim()

/**
 * A credential must be sendable as a header value: a line break (a two-line key file) or another control or non-ASCII
 * character makes fetch throw an error that quotes the value, which would then be printed as "cannot reach".
 */
function checkedCredential (value: string | undefined, from: string): string | undefined {
  if (value !== undefined && !/^[\x21-\x7e]+$/.test(value)) {
    throw usage(`${from} holds a character a header cannot carry (a line break, a space, a control or non-ASCII character): give the token or key alone, on one line`)
  }
  return value
}

const CREDENTIAL_FILE_MAX = 64 * 1024

/** At most `max` + 1 bytes of a file (a FIFO from `<(…)` included): /dev/zero or a huge file cannot fill memory. */
async function readBounded (file: string, max: number): Promise<string> {
  const handle = await open(file, 'r')
  try {
    const buffer = Buffer.alloc(max + 1)
    let length = 0
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null)
      if (bytesRead === 0) break
      length += bytesRead
    }
    return buffer.subarray(0, length).toString('utf8')
  } finally {
    await handle.close()
  }
}

/**
 * A credential file as a secret manager or `umask 077; … > file` writes it: the whole file, less one final newline.
 * Every failure names the file and never shows its contents.
 */
export async function readCredentialFile (option: string, file: string): Promise<string> {
  let text: string
  try {
    text = await readBounded(file, CREDENTIAL_FILE_MAX)
  } catch (error) {
    const code = (error as { code?: unknown }).code
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EISDIR' ? 'a directory' : `cannot be read (${String(code ?? error)})`
    throw usage(`${option} ${JSON.stringify(file)}: ${why}`)
  }
  if (text.length > CREDENTIAL_FILE_MAX) throw usage(`${option} ${JSON.stringify(file)} is larger than ${CREDENTIAL_FILE_MAX / 1024} KiB: not a token or key`)
  const value = text.replace(/\r?\n$/, '')
  if (value === '') throw usage(`${option} ${JSON.stringify(file)} is empty`)
  return value
}

interface Credential { token?: string, apiKey?: string, onCommandLine?: '--token' | '--api-key' }

/**
 * A token or a secret API key, never both (the API refuses the pair as ambiguous), and from one place: an option
 * (a file, or the value itself) beats the environment.
 */
async function credentialFor (values: Values, env: Env): Promise<Credential> {
  const options = CREDENTIALS.filter((name) => name.endsWith('-file') ? values[name] !== undefined : given(values[name]) !== undefined)
  if (options.length > 1) throw usage(`give one token or key, not ${options.map((name) => `--${name}`).join(' and ')}`)
  switch (options[0]) {
    case 'token': return { token: checkedCredential(given(values.token), '--token'), onCommandLine: '--token' }
    case 'api-key': return { apiKey: checkedCredential(given(values['api-key']), '--api-key'), onCommandLine: '--api-key' }
    case 'token-file': {
      const file = values['token-file'] ?? ''
      return { token: checkedCredential(await readCredentialFile('--token-file', file), `--token-file ${JSON.stringify(file)}`) }
    }
    case 'api-key-file': {
      const file = values['api-key-file'] ?? ''
      return { apiKey: checkedCredential(await readCredentialFile('--api-key-file', file), `--api-key-file ${JSON.stringify(file)}`) }
    }
  }
  const fromEnv = {
    token: checkedCredential(given(env.EVA_HEARTBEAT_TOKEN), 'EVA_HEARTBEAT_TOKEN'),
    apiKey: checkedCredential(given(env.EVA_HEARTBEAT_API_KEY), 'EVA_HEARTBEAT_API_KEY')
  }
  if (fromEnv.token !== undefined && fromEnv.apiKey !== undefined) {
    throw usage('EVA_HEARTBEAT_TOKEN and EVA_HEARTBEAT_API_KEY are both set: unset one, or pass --token-file or --api-key-file')
  }
  return fromEnv
}

/** One line, never the value: an argument is in every local user's `ps` and in shell history. */
export function commandLineWarning (option: '--token' | '--api-key'): string {
  const instead = option === '--token' ? '--token-file PATH or EVA_HEARTBEAT_TOKEN' : '--api-key-file PATH or EVA_HEARTBEAT_API_KEY'
  return `eva-heartbeat: warning: ${option} on the command line is visible to every local user (ps); use ${instead}\n`
}

async function clientFor (values: Values, env: Env, io: CliIo): Promise<ApiClient> {
  const { token, apiKey, onCommandLine } = await credentialFor(values, env)
  const client = new ApiClient({
    url: values.url ?? env.EVA_HEARTBEAT_URL ?? DEFAULT_URL,
    token,
    apiKey,
    timeoutMs: positiveSeconds('timeout', values.timeout, 10) * 1000
  })
  if (onCommandLine !== undefined) io.stderr(commandLineWarning(onCommandLine))
  return client
}

/**
 * How to mint a token for the embedded default: `npm run -s token` when run by npm in this checkout (there is no
 * eva-heartbeat command there), else the installed bin's own command, and the checkout's beside it.
 */
export function mintHint (role: string, env: Env): string {
  const checkout = `npm run -s token -- --role ${role}`
  return env.npm_package_name === 'eva-heartbeat-api' ? checkout : `eva-heartbeat token --role ${role}, in a checkout ${checkout},`
}

function requireToken (client: ApiClient, command: string, roles: string, mintRole: string, env: Env): void {
  if (!client.hasToken) {
    throw usage(`${command} needs ${/^[aeiou]/.test(roles) ? 'an' : 'a'} ${roles} token: --token-file PATH or EVA_HEARTBEAT_TOKEN (${mintHint(mintRole, env)} mints one for the embedded default), or a secret API key: --api-key-file PATH or EVA_HEARTBEAT_API_KEY`)
  }
}

function graceQuery (values: Values): Record<string, string> {
  return values.grace === undefined ? {} : { grace: String(positiveSeconds('grace', values.grace, 0, { zero: true, max: 86400 })) }
}

const json = (value: unknown): string => JSON.stringify(value, null, 2) + '\n'

async function status (values: Values, env: Env, io: CliIo): Promise<number> {
  const client = await clientFor(values, env, io)
  requireToken(client, 'status', 'authenticated or service_role', 'authenticated', env)
  const answer = await client.request('GET', 'heartbeat', { query: graceQuery(values) })
  if (answer.status !== 200 || !isHeartbeatAnswer(answer.json)) throw new CliError(describeFailure(answer))
  io.stdout(values.json ? json(answer.json) : formatStatus(answer.json, answer.headers.get('etag')))
  return EXIT_OK
}

/** Nagios semantics: every failure to learn the verdict is UNKNOWN (3), printed on stdout where agents read it. */
async function check (values: Values, env: Env, io: CliIo): Promise<number> {
  let result: CheckResult
  let liveness: unknown
  try {
    const client = await clientFor(values, env, io)
    const answer: ApiAnswer = await client.request('GET', 'heartbeat/liveness', { query: graceQuery(values) })
    liveness = answer.json
    result = (answer.status === 200 || answer.status === 503) && isLiveness(answer.json)
      ? checkResult(answer.json)
      : unknownResult(describeFailure(answer))
  } catch (error) {
    if (error instanceof CliError && error.exitCode === EXIT_USAGE) throw error
    result = unknownResult(error instanceof Error ? error.message : String(error))
  }
  io.stdout(values.json
    ? json({ exit_code: result.code, label: result.label, summary: result.line, liveness: isLiveness(liveness) ? liveness : null })
    : result.line + '\n')
  return result.code
}

async function change (command: string, what: string, body: HeartbeatPatch, values: Values, env: Env, io: CliIo, waitSeconds?: number): Promise<number> {
  const client = await clientFor(values, env, io)
  requireToken(client, command, 'service_role', 'service_role', env)
  const headers = values['if-match'] === undefined ? undefined : { 'if-match': values['if-match'] }
  if (waitSeconds !== undefined) {
    const { decision, context } = await changeAndWait(client, {
      goal: command as WaitGoal,
      body,
      headers,
      waitSeconds,
      onAccepted: (answer) => {
        if (!values.json) io.stdout(formatChange(what, answer).replace(/\n$/, `; waiting up to ${waitSeconds} s for the scheduler\n`))
      }
    })
    const code = WAIT_EXIT_CODES[decision.outcome]
    if (values.json) io.stdout(json(waitReport(decision, context)))
    else if (code === EXIT_OK) io.stdout(waitSummary(decision, context) + '\n')
    else io.stderr(`eva-heartbeat: ${waitSummary(decision, context)}\n`)
    return code
  }
  const answer = await client.request('PATCH', 'heartbeat', { body, ...(headers !== undefined ? { headers } : {}) })
  if (answer.status !== 200 || !isHeartbeatAnswer(answer.json)) throw new CliError(describeFailure(answer))
  io.stdout(values.json ? json(answer.json) : formatChange(what, answer.json))
  return EXIT_OK
}

async function token (values: Values, env: Env, io: CliIo): Promise<number> {
  const role = values.role
  if (role === undefined || role.trim() === '') throw usage('--role is required (authenticated or service_role)')
  const ttl = positiveSeconds('ttl', values.ttl ?? '3600', 3600)
  if (!Number.isInteger(ttl)) throw usage('--ttl must be a whole number of seconds above 0')
  // Loaded here only: the other commands (check runs from cron every minute) start faster without them.
  const [{ SignJWT }, { loadConfig }, { readDevSecret }] = await Promise.all([import('jose'), import('../config.js'), import('../embedded/dev-secret.js')])
  const config = loadConfig(env)
  const secret = config.jwt.secret ?? await readDevSecret(config.dataDir)
  if (secret === undefined) throw new CliError(`no JWT_SECRET and no development secret in ${config.dataDir}: run npm start once first`)
  let jwt = new SignJWT({ role, ...(config.jwt.audience !== undefined ? { aud: config.jwt.audience } : {}) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(`${ttl}s`)
    .setSubject(values.sub ?? `cli:${role}`)
  if (config.jwt.issuer !== undefined) jwt = jwt.setIssuer(config.jwt.issuer)
  const signed = await jwt.sign(new TextEncoder().encode(secret))
  io.stdout(values.json ? json({ token: signed }) : signed + '\n')
  return EXIT_OK
}

/**
 * `--wait` takes an optional number of seconds: `--wait`, `--wait 30` and `--wait=30`. parseArgs has no optional
 * values, so it is a boolean here and the number, when one follows it, is taken back out of the positionals.
 */
function parse (argv: readonly string[]): { values: Values, positionals: string[], waitSeconds: number | undefined } {
  const args = argv.flatMap((arg) => arg.startsWith('--wait=') ? ['--wait', arg.slice('--wait='.length)] : [arg])
  let parsed
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true, tokens: true })
  } catch (error) {
    throw usage(error instanceof Error ? error.message.split('\n')[0] ?? 'bad arguments' : 'bad arguments')
  }
  const { values, tokens } = parsed
  const wait = tokens.find((token) => token.kind === 'option' && token.name === 'wait')
  const following = wait === undefined ? undefined : tokens.find((token) => token.index === wait.index + 1)
  const given = following?.kind === 'positional' && /^[\d.]/.test(following.value) ? following : undefined
  const positionals = tokens.flatMap((token) => token.kind === 'positional' && token !== given ? [token.value] : [])
  const waitSeconds = wait === undefined
    ? undefined
    : positiveSeconds('wait', given?.value, DEFAULT_WAIT_SECONDS, { max: MAX_WAIT_SECONDS })
  return { values, positionals, waitSeconds }
}

async function dispatch (argv: readonly string[], env: Env, io: CliIo): Promise<number> {
  const { values, positionals, waitSeconds } = parse(argv)
  const [command, ...rest] = positionals
  if (values.help || command === 'help') {
    io.stdout(USAGE + '\n')
    return EXIT_OK
  }
  if (command === undefined) throw usage('a command is required')
  const accepted = ACCEPTS[command]
  if (accepted === undefined) throw usage(`unknown command ${JSON.stringify(command)}`)
  const given = (Object.keys(values) as Array<keyof typeof OPTIONS>)
    .filter((name) => values[name] !== undefined && values[name] !== false && name !== 'help')
  const stray = given.find((name) => !accepted.includes(name))
  if (stray !== undefined) throw usage(`${command} does not take --${stray}`)
  if (command !== 'breaker' && rest.length > 0) throw usage(`${command} takes no argument ${JSON.stringify(rest[0])}`)

  switch (command) {
    case 'status': return await status(values, env, io)
    case 'check': return await check(values, env, io)
    case 'pause': {
      const reason = values.reason
      if (reason === undefined || reason.trim() === '') throw usage('pause needs --reason TEXT (1 to 500 characters): it is what the verdict and the row show')
      return await change(command, 'paused', pauseBody(reason), values, env, io, waitSeconds)
    }
    case 'resume': return await change(command, 'resumed', RESUME_BODY, values, env, io, waitSeconds)
    case 'breaker': {
      const state = rest.length === 1 ? BREAKER_ARGS[(rest[0] ?? '').toLowerCase()] : undefined
      if (state === undefined) throw usage('breaker takes one of open, close, half-open')
      return await change(command, `breaker ${state}`, breakerBody(state), values, env, io)
    }
    default: return await token(values, env, io)
  }
}

/** Runs one command; returns the exit code. Failures are one line on stderr (check prints its UNKNOWN on stdout). */
export async function runCli (argv: readonly string[], env: Env, io: CliIo): Promise<number> {
  try {
    return await dispatch(argv, env, io)
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    io.stderr(`eva-heartbeat: ${message.replace(/\s*\n\s*/g, ' ')}\n`)
    return error instanceof CliError ? error.exitCode : EXIT_FAILED
  }
}
