import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { RunSummary } from '../../workflows/types';
import type { ArtifactStore } from '../../activities/store';
import { buildCharts } from './charts';
import { withCurves } from './curves';
import { renderReportHtml, type RenderedChart } from './html';
import { buildReportModel } from './report-model';
import { renderChartSvg } from './svg-render';

/** Where `writeRunReport` put the report. */
export interface RunReportFiles {
  /** `<outDir>/index.html`: the whole report, charts inlined, no external requests, no scripts. */
  htmlPath: string;
  /** `<outDir>/<chart id>.svg`: each figure on its own, in page order. */
  svgPaths: string[];
}

/**
 * Writes the report of a run: `index.html` plus one `.svg` per figure, into `outDir` (created if
 * missing; files of an earlier report there are overwritten). Sections whose data the summary
 * lacks are left out, so a data-only run gets a stage table and no charts. Loss curves are
 * artifacts: without `store` the report has none.
 */
export async function writeRunReport(summary: RunSummary, outDir: string, store?: ArtifactStore): Promise<RunReportFiles> {
  const model = buildReportModel(store ? await withCurves(summary, store) : summary);
  const rendered: RenderedChart[] = [];
  // One at a time: each View is small, and the order keeps output stable.
  for (const chart of buildCharts(model)) {
    rendered.push({ chart, svg: await renderChartSvg(chart), file: `${chart.id}.svg` });
  }
  await mkdir(outDir, { recursive: true });
  const svgPaths = rendered.map((r) => path.join(outDir, r.file));
  await Promise.all(rendered.map((r, i) => writeFile(svgPaths[i], `<?xml version="1.0" encoding="UTF-8"?>\n${r.svg}\n`)));
  const htmlPath = path.join(outDir, 'index.html');
  await writeFile(htmlPath, renderReportHtml(model, rendered));
  return { htmlPath, svgPaths };
}
