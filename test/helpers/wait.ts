// Waiting in tests without asserting on elapsed time.

export const delay = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/**
 * The margin a bound on an answer's time allows beyond the deadline it checks. The bound only tells an answer at the
 * deadline from a request left hanging (until a lock's release or the test's timeout); 2 s proved breakable on 2
 * cores shared with other suites, so the margin is wide, and what the tests assert is states and counts.
 */
export const LOADED_MARGIN_MS = 15_000

/** Polls `condition` until it holds or `timeoutMs` passes. */
export async function eventually (condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms`)
    await delay(25)
  }
}
