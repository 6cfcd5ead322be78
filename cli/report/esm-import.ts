import { pathToFileURL } from 'node:url';
import * as vm from 'node:vm';

// Vega 6 and Vega-Lite 6 are ESM-only, and vega-canvas awaits at top level (it probes for the
// optional `canvas` package), so `require()` of them fails even on Node 20.19+ with
// ERR_REQUIRE_ASYNC_MODULE: only a real `import()` loads them. Under `module: commonjs`, TypeScript
// (and @swc/jest) rewrite `import()` into `require()`, so the import expression is built at run
// time instead, where no compiler sees it.
//
// Two runtimes:
// - plain Node (tsc's dist/, tsx): a Function-constructor `import()` uses Node's ESM loader.
// - jest: test code runs in a `vm` context whose dynamic-import hook throws
//   ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING_FLAG unless Node runs with --experimental-vm-modules.
//   There the import runs in Node's main context instead (`vm.runInThisContext` with
//   USE_MAIN_CONTEXT_DEFAULT_LOADER, Node >= 20.12). The module then lives outside jest's registry,
//   which is harmless here: Vega is never mocked and only strings cross back.

type Importer = (url: string) => Promise<unknown>;

const nativeImport = new Function('url', 'return import(url)') as Importer;

let mainContextImport: Importer | undefined;

/** `import()` of an ES module from CommonJS code, under Node and under jest alike. */
export async function importEsm<T>(specifier: string): Promise<T> {
  // Resolved here so the module is found from this package, whichever context imports it.
  const url = pathToFileURL(require.resolve(specifier)).href;
  try {
    return (await nativeImport(url)) as T;
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING_FLAG') throw error;
    mainContextImport ??= vm.runInThisContext('(url) => import(url)', {
      filename: __filename,
      importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
    }) as Importer;
    return (await mainContextImport(url)) as T;
  }
}
