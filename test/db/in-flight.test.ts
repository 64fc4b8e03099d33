// Sharing as a pure mechanism: a caller shares only a read that starts after it arrived; at most one read runs and
// one waits per key.
import t from 'tap'
import { NextRead } from '../../src/db/in-flight.js'

/** Work that finishes when the test says so, in the order it was started. */
function controlled<V> (): { work: () => Promise<V>, started: () => number, finish: (value: V) => void, fail: (error: Error) => void } {
  const settles: Array<{ resolve: (value: V) => void, reject: (error: Error) => void }> = []
  let done = 0
  return {
    work: async () => await new Promise<V>((resolve, reject) => { settles.push({ resolve, reject }) }),
    started: () => settles.length,
    finish: (value) => settles[done++]?.resolve(value),
    fail: (error) => settles[done++]?.reject(error)
  }
}

const turn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

t.test('callers of one turn share one read, started on the next turn', async (t) => {
  const reads = new NextRead<number>()
  const work = controlled<number>()
  const answers = Promise.all([1, 2, 3].map(async () => await reads.run('k', work.work)))
  t.equal(work.started(), 0, 'not started in the callers\' turn')
  await turn()
  t.equal(work.started(), 1, 'one read for three callers')
  work.finish(42)
  t.same(await answers, [42, 42, 42])
  t.equal(reads.size, 0, 'nothing kept once it settled')
})

t.test('a caller arriving while a read runs waits for the next read, never the running one', async (t) => {
  const reads = new NextRead<string>()
  const work = controlled<string>()
  const early = reads.run('k', work.work)
  await turn()
  t.equal(work.started(), 1)
  const late = [reads.run('k', work.work), reads.run('k', work.work)]
  await turn()
  t.equal(work.started(), 1, 'no second read while one runs')
  work.finish('before')
  t.equal(await early, 'before')
  await turn()
  t.equal(work.started(), 2, 'the next read starts once the running one settled')
  const later = reads.run('k', work.work)
  work.finish('after')
  t.same(await Promise.all(late), ['after', 'after'], 'the late callers share the read that started after them')
  await turn()
  t.equal(work.started(), 3, 'and one arriving while that ran got a read of its own')
  work.finish('latest')
  t.equal(await later, 'latest')
})

t.test('different keys never share', async (t) => {
  const reads = new NextRead<string>()
  const work = controlled<string>()
  const a = reads.run('authenticated\n{"sub":"a"}', work.work)
  const b = reads.run('authenticated\n{"sub":"b"}', work.work)
  await turn()
  t.equal(work.started(), 2)
  work.finish('a')
  work.finish('b')
  t.same(await Promise.all([a, b]), ['a', 'b'])
})

t.test('a failure reaches the callers of that read only; the waiting read still runs', async (t) => {
  const reads = new NextRead<number>()
  const work = controlled<number>()
  const one = reads.run('k', work.work)
  await turn()
  const two = reads.run('k', work.work)
  work.fail(new Error('connection refused'))
  await t.rejects(one, /connection refused/)
  await turn()
  t.equal(work.started(), 2)
  work.finish(2)
  t.equal(await two, 2)
  t.equal(reads.size, 0)
})
