// Sharing a readiness check as a pure mechanism, on a clock the test moves: who waits for the running check, how long
// a result is reused, and that nothing older than the window is ever served.
import t from 'tap'
import { SharedResult } from '../../src/db/readiness.js'

const WINDOW = 1000

/** Work that finishes when the test says so, counting how often it was started. */
function controlled<V> (): { work: () => Promise<V>, started: () => number, finish: (value: V) => void, fail: (error: Error) => void } {
  let count = 0
  let settle: { resolve: (value: V) => void, reject: (error: Error) => void } | undefined
  return {
    work: async () => {
      count += 1
      return await new Promise<V>((resolve, reject) => { settle = { resolve, reject } })
    },
    started: () => count,
    finish: (value) => settle?.resolve(value),
    fail: (error) => settle?.reject(error)
  }
}

function setup<V> (): { shared: SharedResult<V>, work: ReturnType<typeof controlled<V>>, clock: { ms: number } } {
  const clock = { ms: 10_000 }
  const work = controlled<V>()
  return { shared: new SharedResult(work.work, WINDOW, () => clock.ms), work, clock }
}

t.test('callers arriving while the check runs share it', async (t) => {
  const { shared, work } = setup<string>()
  const answers = Promise.all(Array.from({ length: 50 }, async () => await shared.get()))
  t.equal(work.started(), 1, 'one check for 50 callers')
  work.finish('pass')
  t.same(await answers, Array(50).fill('pass'))
})

t.test('a result is reused until the window, counted from the check\'s start, has passed', async (t) => {
  const { shared, work, clock } = setup<string>()
  const first = shared.get()
  clock.ms += 200 // the check took 200 ms
  work.finish('pass')
  t.equal(await first, 'pass')
  clock.ms += WINDOW - 201
  t.equal(await shared.get(), 'pass', 'reused 999 ms after its start')
  t.equal(work.started(), 1)
  clock.ms += 1
  const next = shared.get()
  t.equal(work.started(), 2, 'at the window a new check starts: the old result is not served')
  work.finish('fail')
  t.equal(await next, 'fail')
})

t.test('a failed result is reused no longer than a success', async (t) => {
  const { shared, work, clock } = setup<string>()
  const first = shared.get()
  work.finish('fail')
  t.equal(await first, 'fail')
  clock.ms += WINDOW - 1
  t.equal(await shared.get(), 'fail')
  clock.ms += 1
  const next = shared.get()
  t.equal(work.started(), 2)
  work.finish('pass')
  t.equal(await next, 'pass', 'ready as soon as a check says so')
})

t.test('a check slower than the window answers those who waited for it, and nobody later', async (t) => {
  const { shared, work, clock } = setup<string>()
  const early = shared.get()
  clock.ms += WINDOW + 500
  const late = shared.get()
  t.equal(work.started(), 1, 'a caller arriving while it runs waits for it')
  work.finish('pass')
  t.same(await Promise.all([early, late]), ['pass', 'pass'])
  const after = shared.get()
  t.equal(work.started(), 2, 'its result is already older than the window: a new check')
  work.finish('pass')
  await after
})

t.test('a thrown error reaches every waiting caller and is not kept', async (t) => {
  const { shared, work } = setup<string>()
  const answers = Array.from({ length: 3 }, async () => await shared.get())
  work.fail(new Error('bug'))
  for (const answer of answers) await t.rejects(answer, /bug/)
  const next = shared.get()
  t.equal(work.started(), 2, 'the next caller starts a new check')
  work.finish('pass')
  t.equal(await next, 'pass')
})
