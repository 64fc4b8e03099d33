// The embedded default's banner: where it listens, that its row is demo data, where the password is, and a token
// command that finds the same DATA_DIR when pasted into a shell.
import t from 'tap'
import { bannerText, type BannerFacts } from '../../src/embedded/banner.js'

const facts: BannerFacts = {
  address: 'http://127.0.0.1:3000',
  readyMs: 1234,
  server: { port: 54321, dataDir: '/srv/eva/.data/pg', passwordFile: '/srv/eva/.data/pg.password' },
  dataDir: '.data',
  demo: { enabled: true, intervalSeconds: 5 }
}

t.test('the address, the demo, the password file and the commands to try it', async (t) => {
  const lines = bannerText(facts).split('\n')
  t.equal(lines[0], '')
  t.equal(lines[1], 'eva-heartbeat-api is listening on http://127.0.0.1:3000 (ready in 1234 ms)')
  t.equal(lines[2], '  database: embedded PostgreSQL on 127.0.0.1:54321, data in /srv/eva/.data/pg, demo scheduler every 5 s')
  t.equal(lines[3], '  its logins: user postgres (superuser) or authenticator, password in /srv/eva/.data/pg.password')
  t.equal(lines[4], '  DEMO DATA: the row is the embedded database\'s, not your scheduler\'s, and every verdict says "demo";')
  t.ok(lines.includes('    curl -s http://127.0.0.1:3000/heartbeat/liveness'))
  t.ok(lines.includes('    TOKEN=$(npm run -s token -- --role authenticated)'), 'the default DATA_DIR is not named')
  t.ok(lines.includes('  API docs: http://127.0.0.1:3000/docs'))
  t.ok(bannerText(facts).endsWith('\n'))
})

t.test('without the demo scheduler the row is still demo data', async (t) => {
  const text = bannerText({ ...facts, demo: { enabled: false, intervalSeconds: 5 } })
  t.notMatch(text, 'demo scheduler every')
  t.match(text, /\n {2}DEMO DATA: /)
})

t.test('another DATA_DIR is named in the token command, quoted for a shell when it needs it', async (t) => {
  t.match(bannerText({ ...facts, dataDir: '/tmp/eva-data' }), '\n    TOKEN=$(DATA_DIR=/tmp/eva-data npm run -s token -- --role authenticated)\n')
  t.match(bannerText({ ...facts, dataDir: '/tmp/it\'s here' }), '\n    TOKEN=$(DATA_DIR=\'/tmp/it\'\\\'\'s here\' npm run -s token -- --role authenticated)\n')
})
