#!/usr/bin/env node
// eva-heartbeat: the ops command line (status, check, pause, resume, breaker, token). It talks to the HTTP API,
// never to the database; the commands live in src/cli/ so that tests run them as this file does.
import { runCli } from './commands.js'

const code = await runCli(process.argv.slice(2), process.env, {
  stdout: (text) => { process.stdout.write(text) },
  stderr: (text) => { process.stderr.write(text) }
})
// Done once the answer is out: nothing left open (a connection, a timer) may hold a script for seconds after it.
process.exitCode = code
process.stdout.write('', () => { process.stderr.write('', () => { process.exit(code) }) })
