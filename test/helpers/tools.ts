// Finding and running the real components the tests need (PgBouncer, HAProxy, nginx, Chromium, promtool, …). A
// component that is missing makes its tests skip, naming the Debian package, for a developer; under CI=true (.ci/run
// sets it) the file fails instead, naming the component, so that CI cannot pass without it.
import { spawn, spawnSync } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { freePort } from '../../src/embedded/local-postgres.js'

interface Teardown { teardown: (fn: () => unknown) => void }

/** The full path of an executable on PATH (or one of `names`), or undefined. */
export function findTool (...names: string[]): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter((dir) => dir !== '')
  for (const name of names) {
    for (const dir of dirs) {
      const candidate = path.join(dir, name)
      try {
        accessSync(candidate, constants.X_OK)
        return candidate
      } catch {}
    }
  }
  return undefined
}

/** Under CI=true a missing component fails its tests; anywhere else they skip. */
export const strict = (env: NodeJS.ProcessEnv = process.env): boolean => env.CI !== undefined && !['', '0', 'false'].includes(env.CI.toLowerCase())

/** Whether `file` exists and may be executed. */
export function executable (file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** `name` on PATH, else in /usr/sbin or /sbin (where Debian puts daemons, off an ordinary user's PATH). */
export function findSbin (name: string): string | undefined {
  return findTool(name) ?? [`/usr/sbin/${name}`, `/sbin/${name}`].find(executable)
}

const missing = (what: string, debianPackage: string): string => `${what} is not installed (apt-get install -y ${debianPackage})`

/**
 * Options for t.test of a test that needs a real component: `{}` when `tool` was found; else `{ skip: '…' }`
 * naming the package, and under CI=true also a failure (at the file's top level) naming the component.
 */
export function needs (tool: string | undefined, what: string, debianPackage: string): { skip?: string } {
  if (tool !== undefined) return {}
  const reason = missing(what, debianPackage)
  if (strict()) t.fail(`${reason}: CI=true runs every test that needs a real component`, { component: what })
  return { skip: reason }
}

/**
 * For a file whose every test needs the component: returns when `tool` was found; else ends the file, as skipped
 * (a developer) or as failed naming the component (CI=true).
 */
export function needsForFile (tool: string | undefined, what: string, debianPackage: string): void {
  if (tool !== undefined) return
  const reason = missing(what, debianPackage)
  if (strict()) {
    t.fail(`${reason}: CI=true runs every test that needs a real component`, { component: what })
    t.end()
    process.exit(1)
  }
  t.plan(0, reason)
  process.exit(0)
}

export interface RunResult { status: number | null, stdout: string, stderr: string }

export function run (command: string, args: string[], input?: string): RunResult {
  const result = spawnSync(command, args, { input, encoding: 'utf8', timeout: 60_000 })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

/**
 * Starts a long-running tool on a free loopback port and waits until `readyPath` answers 200; stopped (by its own
 * pid) at teardown.
 */
export async function startDaemon (t: Teardown, command: string, args: (port: number) => string[], readyPath = '/'): Promise<{ base: string, output: () => string }> {
  const port = await freePort()
  const child = spawn(command, args(port), { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
  t.teardown(async () => {
    if (child.exitCode === null) child.kill('SIGTERM')
    await exited
  })
  const base = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${command} exited with ${child.exitCode}:\n${output}`)
    try {
      if ((await fetch(base + readyPath)).status === 200) break
    } catch {}
    if (Date.now() > deadline) throw new Error(`${command} was not ready at ${base}${readyPath} within 30 s:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return { base, output: () => output }
}
