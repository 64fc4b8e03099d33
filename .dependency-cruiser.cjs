// Which way imports may point in src/ (`npm run deps`, run by CI): no cycles, the pure domain imports nothing of
// ours, the data path, auth and events never reach up into the HTTP layer, and the CLI stays an HTTP client.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'domain-is-pure',
      comment: 'src/domain is pure logic: it imports only itself (and libraries), never I/O or HTTP code of ours',
      severity: 'error',
      from: { path: '^src/domain/' },
      to: { path: '^src/', pathNot: '^src/domain/' }
    },
    {
      name: 'no-climbing-back',
      comment: 'the data path, auth, events, the embedded server and the shared HTTP pieces never import routes, plugins or the app',
      severity: 'error',
      from: { path: '^src/(db|auth|events|embedded|http|status|domain)/' },
      to: { path: '^src/(routes/|plugins/|app\\.ts$|server\\.ts$)' }
    },
    {
      name: 'data-path-stays-below',
      comment: 'src/db is the data path: it never imports the embedded server or the HTTP layer (they hand it what it needs, e.g. a socket factory)',
      severity: 'error',
      from: { path: '^src/db/' },
      to: { path: '^src/(embedded|http)/' }
    },
    {
      name: 'cli-is-a-client',
      comment: 'the ops CLI talks HTTP: it never imports the server, its routes or the database code (it reads the dev secret to mint tokens)',
      severity: 'error',
      from: { path: '^src/cli' },
      to: { path: '^src/(routes/|plugins/|db/|embedded/|http/|app\\.ts$|server\\.ts$)', pathNot: '^src/embedded/dev-secret\\.ts$' }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true
  }
}
