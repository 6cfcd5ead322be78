import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { RunSummary } from '../../workflows/types';
import type { ArtifactStore } from '../../activities/store';
import { buildCharts } from './charts';
import { withCurves } from './curves';
import { withPredictions } from './predictions';
import { renderReportHtml, type RenderedChart } from './html';
import { buildReportModel, type ReportModel } from './report-model';
import { renderChartSvg } from './svg-render';

/** Where `writeRunReport` put the report. */
export interface RunReportFiles {
  /** `<outDir>/index.html`: the whole report, charts inlined, no external requests, no scripts. */
  htmlPath: string;
  /** `<outDir>/<chart id>.svg`: each figure on its own, in page order. */
  svgPaths: string[];
  /** What the report shows, e.g. the lifts with their intervals, for the CLI's headline. */
  model: ReportModel;
}

/** A run's default report folder would not be a folder directly inside the reports folder. */
export class ReportPathError extends Error {
  override readonly name = 'ReportPathError';
  constructor(
    readonly runId: string,
    readonly reportsDir: string,
  ) {
    super(`run id ${JSON.stringify(runId.length > 60 ? `${runId.slice(0, 57)}...` : runId)} would put its report outside ${reportsDir}; pass --out <dir> to say where the report goes`);
  }
}

/**
 * The folder a run's report goes to when the user names none: `<reportsDir>/<runId>`. A run id
 * from the server (a workflow started by another client) is not trusted to be one path segment:
 * `..`, `a/b` or an absolute path is refused rather than written above or outside `reportsDir`.
 */
export function defaultReportDir(reportsDir: string, runId: string): string {
  const root = path.resolve(reportsDir);
  const dir = path.resolve(root, runId);
  const relative = path.relative(root, dir);
  const escapes = relative === '' || relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative);
  if (escapes || relative.includes(path.sep) || /[\\/]/.test(runId)) throw new ReportPathError(runId, root);
  return dir;
}

/**
 * Writes the report of a run: `index.html` plus one `.svg` per figure, into `outDir` (created if
 * missing; files of an earlier report there are overwritten). Sections whose data the summary
 * lacks are left out, so a data-only run gets a stage table and no charts. Loss curves and
 * per-record predictions are artifacts: without `store` the report has neither.
 */
export async function writeRunReport(summary: RunSummary, outDir: string, store?: ArtifactStore): Promise<RunReportFiles> {
  const model = buildReportModel(store ? await withPredictions(await withCurves(summary, store), store) : summary);
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
  return { htmlPath, svgPaths, model };
}
