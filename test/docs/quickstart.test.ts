// The README's quick-start commands, read from README.md itself (the sh blocks after a `<!-- quickstart:NAME -->`
// marker) and run by bash as a reader would, against the embedded default started as `npm start` starts it. Only the
// port changes; `npm run -s NAME` runs what package.json says that script runs, on src/ through tsx instead of
// dist/ (as test/helpers/server-process.ts does for the server), so that no stale build is tested.
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { embeddedDataDir, environment, ROOT, startServer } from '../helpers/server-process.js'
import { findTool, needs } from '../helpers/tools.js'
import { eventually } from '../helpers/wait.js'

const EXAMPLE_BASE = 'http://127.0.0.1:3000'
const README = await readFile(path.join(ROOT, 'README.md'), 'utf8')
const SCRIPTS = (JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts

interface Block { commands: string[], shown: string | undefined }

/** The marked sh block, split into commands (continued lines joined), and the block shown right after it, if any. */
function quickstart (name: string): Block {
  const match = new RegExp(`<!-- quickstart:${name} -->\\n\`\`\`sh\\n([\\s\\S]*?)\`\`\`\\n(?:\`\`\`\\w*\\n([\\s\\S]*?)\`\`\`)?`).exec(README)
  if (match === null) throw new Error(`README.md has no sh block marked quickstart:${name}`)
  const commands = (match[1] ?? '').replace(/\\\n\s*/g, '').split('\n').filter((line) => line.trim() !== '')
  return { commands, shown: match[2] }
}

/** `npm run -s NAME [--]` as package.json defines it, on src/ through tsx. */
function npmRun (command: string): string {
  return command.replace(/npm run -s ([\w:-]+)(?: --)?/g, (_, name: string) => {
    const script = SCRIPTS[name]
    const node = script !== undefined ? /^node dist\/([\w/-]+)\.js(.*)$/.exec(script) : null
    if (node === null) throw new Error(`package.json script ${name} is not "node dist/….js …": ${String(script)}`)
    return `node --import tsx src/${node[1] ?? ''}.ts${node[2] ?? ''}`
  })
}

const SEPARATOR = '\n@@quickstart-command-done@@\n'

/** Runs the commands in one bash (so variables carry over), and gives each command's output. */
function bash (commands: string[], base: string, env: Record<string, string>): Promise<{ code: number, outputs: string[], stderr: string }> {
  const script = commands.map((command) => `${npmRun(command.replaceAll(EXAMPLE_BASE, base))}\nprintf '${SEPARATOR.replaceAll('\n', '\\n')}'`).join('\n')
  return new Promise((resolve) => {
    execFile('bash', ['-euo', 'pipefail', '-c', script], { cwd: ROOT, env: environment(env) }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : Number(error.code), outputs: stdout.split(SEPARATOR).slice(0, commands.length), stderr })
    })
  })
}

interface Answer { heartbeat: Record<string, unknown>, liveness: { status: string, state: string } }

t.test('the README quick start, run against the embedded default', needs(findTool('curl'), 'curl', 'curl'), async (t) => {
  const dataDir = await embeddedDataDir(t, 'eva-quickstart-')
  const env = { DATA_DIR: dataDir }
  const server = startServer(t, { ...env, PORT: '0', DEMO_INTERVAL_SECONDS: '1' })
  const { address } = await server.ready(60_000)
  await eventually(async () => (await fetch(`${address}/heartbeat/liveness`)).status === 200, 30_000, 'the demo scheduler wrote the row')

  t.test('the liveness curl prints the verdict with the fields the README shows', async (t) => {
    const { commands, shown } = quickstart('liveness')
    t.same(commands, [`curl -s ${EXAMPLE_BASE}/heartbeat/liveness`])
    const run = await bash(commands, address, env)
    t.equal(run.code, 0, run.stderr)
    const body = JSON.parse(run.outputs[0] ?? '') as Record<string, unknown>
    t.match(body, { status: /^(pass|warn)$/, state: /^(alive|late|starting)$/, demo: true })
    t.same(Object.keys(body).sort(), Object.keys(JSON.parse(shown ?? '') as object).sort(), 'the same fields as the README\'s example')
  })

  t.test('the token command, then the authenticated curls for the row and the metrics', async (t) => {
    const { commands } = quickstart('read')
    t.match(commands[0], /^TOKEN=\$\(npm run -s token -- --role authenticated\)$/)
    const run = await bash(commands, address, env)
    t.equal(run.code, 0, run.stderr)
    const [, heartbeat = '', metrics = ''] = run.outputs
    const answer = JSON.parse(heartbeat) as Answer
    t.equal(answer.heartbeat.id, 1, 'the row')
    t.match(answer.heartbeat.instance_id, /^scheduler-[0-9a-f]{8}$/, 'written by the demo scheduler')
    t.match(answer.liveness.status, /^(pass|warn)$/)
    t.match(metrics, /^scheduler_heartbeat_up\{demo="true"\} 1$/m, 'the metrics, with the token, labelled demo')
    t.match(metrics, /^scheduler_info\{instance_id="scheduler-[0-9a-f]{8}",demo="true"\} 1$/m)
  })

  t.test('the service_role token, the pause and the resume', async (t) => {
    const { commands } = quickstart('write')
    t.equal(commands.length, 3, 'a token, a pause, a resume')
    const run = await bash(commands, address, env)
    t.equal(run.code, 0, run.stderr)
    const pause = JSON.parse(run.outputs[1] ?? '') as Answer
    t.match(pause.heartbeat, { status: 'stopping', paused_reason: 'deploy 4.2' }, 'paused')
    t.same(pause.liveness.state, 'paused')
    const resume = JSON.parse(run.outputs[2] ?? '') as Answer
    t.match(resume.heartbeat, { status: 'running', paused_reason: null }, 'resumed')
    t.match(resume.liveness.status, /^(pass|warn)$/)
    const after = JSON.parse((await bash(['curl -s http://127.0.0.1:3000/heartbeat/liveness'], address, env)).outputs[0] ?? '') as Answer['liveness']
    t.not(after.state, 'paused', 'the pause is over')
  })

  t.test('the CLI pause, status and resume print what the README shows', async (t) => {
    const { commands, shown } = quickstart('cli')
    const run = await bash(commands, address, env)
    t.equal(run.code, 0, run.stderr)
    const [paused, resumed] = (shown ?? '').split('\n').filter((line) => line !== '' && line !== '…')
    t.equal(run.outputs[2], `${paused ?? ''}\n`, 'pause: exactly the line shown')
    t.match(run.outputs[3], /^scheduler paused \(warn\)/, 'status: the verdict, paused')
    t.match(run.outputs[3], /^ {2}paused_reason {10}"deploy 4\.2"$/m)
    // The verdict after a resume is alive unless the demo scheduler's next write is a moment late: both are shown as written.
    const [resumedRow = '', resumedVerdict = ''] = (resumed ?? '').split('; verdict ')
    t.equal(resumedVerdict, 'alive (pass)')
    t.match(run.outputs[4], new RegExp(`^${resumedRow.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}; verdict (alive \\(pass\\)|late \\(warn\\))\\n$`), 'resume: the line shown')
  })

  t.test('pause --wait and resume --wait end with the demo scheduler\'s answer', async (t) => {
    const { commands } = quickstart('wait')
    t.same(commands.map((command) => command.replace(/ --.*$/, '')), ['npm run -s cli', 'npm run -s cli'], 'the CLI, twice')
    // The credential and URL come from the CLI block above, pasted into the same shell.
    const setup = quickstart('cli').commands.filter((command) => command.startsWith('export '))
    const run = await bash([...setup, ...commands], address, env)
    t.equal(run.code, 0, run.stderr)
    t.match(run.outputs[setup.length], /^paused: the scheduler stopped at .*"deploy 4\.2"/m, 'the scheduler took the pause')
    t.match(run.outputs[setup.length + 1], /^resumed: the scheduler is running again/m, 'and the resume')
  })
})
