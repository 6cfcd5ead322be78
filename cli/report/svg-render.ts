import type * as Vega from 'vega';
import type * as VegaLite from 'vega-lite' with { 'resolution-mode': 'import' };
import type { ChartSpec } from './charts';
import { importEsm } from './esm-import';

// Vega-Lite spec -> Vega spec -> headless View -> SVG string. `renderer: 'none'` builds the scene
// graph without a canvas; text widths are then estimated from character counts (vega-canvas's
// optional `canvas` package is not installed and not needed), which is plenty for axis layout.

interface Libraries {
  vega: typeof Vega;
  vegaLite: typeof VegaLite;
}

let libraries: Promise<Libraries> | undefined;

function loadLibraries(): Promise<Libraries> {
  libraries ??= Promise.all([importEsm<typeof Vega>('vega'), importEsm<typeof VegaLite>('vega-lite')]).then(([vega, vegaLite]) => ({ vega, vegaLite }));
  return libraries;
}

/** Renders one chart to a standalone SVG document, safe to inline next to other charts. */
export async function renderChartSvg(chart: ChartSpec): Promise<string> {
  const { vega, vegaLite } = await loadLibraries();
  const compiled = vegaLite.compile(chart.spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return finishSvg(svg, chart);
  } finally {
    view.finalize();
  }
}

/**
 * Makes Vega's SVG fit for inlining: clip-path and gradient ids are numbered per process run
 * (`clip1`, `gradient_0`), so two inlined charts would reference each other's; prefix them with
 * the chart id. And mark the root as a graphics document with a label, as vega-embed does for a
 * chart in a page.
 */
export function finishSvg(svg: string, chart: Pick<ChartSpec, 'id' | 'description'>): string {
  const prefix = `${chart.id}-`;
  const scoped = svg
    .replace(/\bid="([^"]+)"/g, (_, id: string) => `id="${prefix}${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${prefix}${id})`)
    .replace(/(xlink:)?href="#([^"]+)"/g, (_, xlink: string | undefined, id: string) => `${xlink ?? ''}href="#${prefix}${id}"`);
  return scoped.replace(
    /^<svg\b/,
    `<svg role="graphics-document" aria-roledescription="visualization" aria-label="${escapeAttribute(chart.description)}" data-chart="${escapeAttribute(chart.id)}"`,
  );
}

function escapeAttribute(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
