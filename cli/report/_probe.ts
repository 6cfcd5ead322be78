import type { TopLevelSpec } from 'vega-lite' with { 'resolution-mode': 'import' };
import type * as Vega from 'vega';
export type A = TopLevelSpec;
export type B = typeof Vega.View;
