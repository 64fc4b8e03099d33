// `npm run lint`: neostandard (JavaScript Standard Style for ESLint 9, with TypeScript) over src, test, bench and
// scripts. Layout rules that disagree with how this code wraps long lines are off; everything else is Standard's.
import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'coverage/**', '.tap/**', 'node_modules/**', 'openapi/**', 'public/**', 'test/openapi-client/generated/**'] }),
  {
    rules: {
      '@stylistic/indent': 'off',
      '@stylistic/object-property-newline': 'off',
      // `void reply.header(…)` marks a promise-like return that is deliberately not awaited (Fastify's reply).
      'no-void': ['error', { allowAsStatement: true }],
      // It cannot see a flag that a callback or another task changes (`while (running)` around awaits).
      'no-unmodified-loop-condition': 'off'
    }
  }
]
