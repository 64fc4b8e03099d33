// Request validation: Fastify's own ajv compiler and buildApp's ajv options for every part of a request, except that
// bodies are never coerced. Query strings need coercion (they are text: `?grace=30`); a JSON body does not, and
// coercing it would quietly accept `{"status": ["running"]}` or `{"paused_reason": 5}` as something else.
import { AjvCompiler, type BuildCompilerFromPool } from '@fastify/ajv-compiler'

type BuildCompiler = BuildCompilerFromPool
type CompilerOptions = NonNullable<Parameters<BuildCompiler>[1]>

/** What Fastify hands a validator compiler at run time (the package's types describe only `schema`). */
interface RouteSchema { schema: unknown, method: string, url: string, httpPart: string }
type Compile = (route: RouteSchema) => unknown

/** For `schemaController.compilersFactory.buildValidator`: the same options, with `coerceTypes: false` for bodies. */
export function validatorsWithExactBodies (): BuildCompiler {
  const fromPool = AjvCompiler()
  const factory = (externalSchemas: Parameters<BuildCompiler>[0], options: CompilerOptions = {}): Compile => {
    const coercing = fromPool(externalSchemas, options) as unknown as Compile
    const exact = fromPool(externalSchemas, {
      ...options,
      customOptions: { ...options.customOptions, coerceTypes: false }
    } as CompilerOptions) as unknown as Compile
    return (route) => route.httpPart === 'body' ? exact(route) : coercing(route)
  }
  return factory as unknown as BuildCompiler
}
