// Running the real monitoring tools (promtool, prometheus, blackbox_exporter) from the tests. A tool that is not
// installed makes its tests skip with a message naming the Debian package (.ci/run installs them).
import { spawn, spawnSync } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import path from 'node:path'
import { freePort } from '../../src/db/local-postgres.js'

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

/** `{ skip: '…' }` for t.test when the tool is missing, else `{}`. */
export const needs = (tool: string | undefined, what: string, debianPackage: string): { skip?: string } =>
  tool === undefined ? { skip: `${what} is not installed (apt-get install -y ${debianPackage})` } : {}

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
