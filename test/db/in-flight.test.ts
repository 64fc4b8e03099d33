// Coalescing as a pure mechanism: who shares a read, and when a new one starts.
import t from 'tap'
import { InFlight } from '../../src/db/in-flight.js'

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

t.test('callers of one key that arrive while its work runs share it', async (t) => {
  const reads = new InFlight<string, number>()
  const work = controlled<number>()
  const first = reads.run('authenticated', work.work)
  const second = reads.run('authenticated', work.work)
  const third = reads.run('authenticated', work.work)
  t.equal(work.started(), 1, 'one piece of work for three callers')
  t.equal(reads.size, 1)
  work.finish(42)
  t.same(await Promise.all([first, second, third]), [42, 42, 42])
  t.equal(reads.size, 0, 'nothing stays in flight once it settled')
})

t.test('a caller that arrives after the work settled starts new work: nothing older than one in-flight run', async (t) => {
  const reads = new InFlight<string, number>()
  const before = controlled<number>()
  const firstRun = reads.run('authenticated', before.work)
  before.finish(1)
  t.equal(await firstRun, 1)
  const after = controlled<number>()
  const secondRun = reads.run('authenticated', after.work)
  t.equal(after.started(), 1, 'a new run, not the finished one')
  after.finish(2)
  t.equal(await secondRun, 2)
})

t.test('different keys never share', async (t) => {
  const reads = new InFlight<string, string>()
  const a = controlled<string>()
  const b = controlled<string>()
  const forA = reads.run('authenticated', a.work)
  const forB = reads.run('service_role', b.work)
  t.equal(a.started() + b.started(), 2)
  b.finish('service_role sees the row')
  a.finish('authenticated does not')
  t.equal(await forA, 'authenticated does not')
  t.equal(await forB, 'service_role sees the row')
})

t.test('a failure reaches every caller that shared the work, and the next caller starts afresh', async (t) => {
  const reads = new InFlight<string, number>()
  const failing = controlled<number>()
  const one = reads.run('authenticated', failing.work)
  const two = reads.run('authenticated', failing.work)
  failing.fail(new Error('connection refused'))
  await t.rejects(one, /connection refused/)
  await t.rejects(two, /connection refused/)
  const next = controlled<number>()
  const three = reads.run('authenticated', next.work)
  t.equal(next.started(), 1)
  next.finish(3)
  t.equal(await three, 3)
})

t.test('forget(): callers after it start new work, those before it still get the old', async (t) => {
  const reads = new InFlight<string, string>()
  const old = controlled<string>()
  const early = reads.run('authenticated', old.work)
  reads.forget()
  const fresh = controlled<string>()
  const late = reads.run('authenticated', fresh.work)
  t.equal(fresh.started(), 1, 'the caller after forget() did not join the old work')
  old.finish('before the write')
  t.equal(await early, 'before the write')
  // The old work settling must not evict the new one: the next caller still joins it.
  t.equal(reads.size, 1)
  const other = controlled<string>()
  const joined = reads.run('authenticated', other.work)
  t.equal(other.started(), 0)
  fresh.finish('after the write')
  t.equal(await late, 'after the write')
  t.equal(await joined, 'after the write')
})
