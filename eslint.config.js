// `npm run lint`: neostandard (JavaScript Standard Style for ESLint 9, with TypeScript), over src, test, bench and scripts.
import neostandard from 'neostandard'

export default neostandard({ ts: true, ignores: ['dist/**', 'coverage/**', '.tap/**', 'node_modules/**', 'openapi/**', 'public/**'] })
