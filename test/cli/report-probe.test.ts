import * as vm from 'node:vm';
import * as util from 'node:util';
test('main realm Function', async () => {
  const F = (util.inspect as any).constructor as FunctionConstructor;
  console.log(F === Function);
  const imp = new F('s', 'return import(s)') as (s: string) => Promise<any>;
  const v = await imp('vega');
  expect(v.version).toBe('6.4.0');
});
test('runInThisContext no option', async () => {
  const imp = vm.runInThisContext('(s) => import(s)') as (s: string) => Promise<any>;
  const v = await imp('vega');
  expect(v.version).toBe('6.4.0');
});
test('code of error', async () => {
  const imp = new Function('s', 'return import(s)') as (s: string) => Promise<any>;
  try { await imp('vega'); } catch (e: any) { console.log(e.code, e.name, e.message); }
});
