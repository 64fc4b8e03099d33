// The ops CLI run in this process (runCli), its output captured, against a URL and with the environment given.
import { runCli } from '../../src/cli/commands.js'

export interface CliRun { code: number, stdout: string, stderr: string }

export async function runCliCaptured (args: string[], env: Record<string, string>): Promise<CliRun> {
  let stdout = ''
  let stderr = ''
  const code = await runCli(args, env, {
    stdout: (text) => { stdout += text },
    stderr: (text) => { stderr += text }
  })
  return { code, stdout, stderr }
}
