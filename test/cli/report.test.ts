import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import { writeRunReport, type RunReportFiles } from '../../cli/report';
import type { RunSummary } from '../../workflows/types';
import { dumpDom, ensureChromium, screenshot } from '../support/chromium';

// The report as a user sees it: written by the real Vega renderer, opened in a real headless
// chromium (installed from Debian's packages on first use), its DOM and pixels checked.

const FIXTURE = path.join(__dirname, '../fixtures/report/summary.json');

let dir: string;
let summary: RunSummary;
let report: RunReportFiles;

beforeAll(async () => {
  ensureChromium(); // an apt-get install on a machine without it: minutes, hence the timeout
  dir = await mkdtemp(path.join(tmpdir(), 'tempered-report-'));
  summary = JSON.parse(await readFile(FIXTURE, 'utf8'));
  report = await writeRunReport(summary, path.join(dir, 'report'));
}, 600_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const CHART_TITLES: Record<string, string> = {
  'loss-curves': 'Training loss',
  'learning-rate': 'Learning-rate schedule',
  'evaluation-comparison': 'Accuracy and macro-F1 by evaluation',
  'size-quality': 'Model size vs macro-F1',
  robustness: 'Robustness: change on perturbed inputs',
  'confusion-evaluate-two-phase': 'Confusion matrix: evaluate-two-phase',
  'confusion-evaluate-single-phase': 'Confusion matrix: evaluate-single-phase',
  'confusion-evaluate-student': 'Confusion matrix: evaluate-student',
  'confusion-evaluate-student-int8': 'Confusion matrix: evaluate-student-int8',
};

test('writes index.html and one standalone SVG per figure', async () => {
  expect(report.htmlPath).toBe(path.join(dir, 'report', 'index.html'));
  expect(report.svgPaths.map((p) => path.basename(p, '.svg'))).toEqual(Object.keys(CHART_TITLES));
  for (const file of report.svgPaths) {
    const svg = await readFile(file, 'utf8');
    expect(svg).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg role="graphics-document" [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain(`>${CHART_TITLES[path.basename(file, '.svg')]}</text>`);
  }
});

test('the page is self-contained: no scripts, no stylesheets or images to fetch, no remote URLs', async () => {
  const html = await readFile(report.htmlPath, 'utf8');
  expect(html).not.toMatch(/<script|<link|<img|<iframe|@import|\bsrc=/i);
  // The only URLs are XML namespace names, which are identifiers, not requests.
  const urls = new Set(html.match(/https?:\/\/[^\s"')]+/g));
  expect([...urls].sort()).toEqual(['http://www.w3.org/1999/xlink', 'http://www.w3.org/2000/svg']);
});

test('chromium renders every chart with its marks, and the key numbers', async () => {
  const dom = await dumpDom(pathToFileURL(report.htmlPath).href);
  const charts = [...dom.matchAll(/<svg role="graphics-document"[^>]*data-chart="([^"]+)"[^>]*>([\s\S]*?)<\/svg>/g)];
  expect(charts.map((m) => m[1])).toEqual(Object.keys(CHART_TITLES));
  const marks = (id: string, kind: string) => (charts.find((m) => m[1] === id)![2].match(new RegExp(`aria-roledescription="${kind}"`, 'g')) ?? []).length;
  for (const [id, title] of Object.entries(CHART_TITLES)) expect(charts.find((m) => m[1] === id)![2]).toContain(`>${title}</text>`);
  expect(marks('loss-curves', 'line mark')).toBe(4 * 3); // raw train, smoothed train and validation, per stage
  expect(marks('evaluation-comparison', 'bar')).toBe(4 * 2); // accuracy and macro-F1, per evaluation
  expect(marks('size-quality', 'point')).toBe(4);
  expect(marks('robustness', 'bar')).toBe(4 * 2);
  expect(marks('confusion-evaluate-two-phase', 'rect mark')).toBe(2 * 2); // one per cell
  const confusion = charts.find((m) => m[1] === 'confusion-evaluate-two-phase')![2];
  for (const count of ['1,357', '27', '46', '498']) expect(confusion).toContain(`>${count}</text>`);

  const text = dom.replace(/<svg[\s\S]*?<\/svg>/g, '').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');
  expect(text).toContain('spam-domain-adaptation succeeded');
  expect(text).toContain('run 20260314-090000-7f3a2c');
  expect(text).toContain('95.3% macro-F1'); // headline: best evaluation
  expect(text).toContain('accuracy 91.8% → 96.2% (+4.4 pts, +4.8%)'); // two-phase lift
  expect(text).toContain('3.69× smaller'); // quantized size
  expect(text).toContain('725.3 KiB → 196.7 KiB (−72.9%)');
  expect(text).toContain('macro-F1 93.71% → 93.55% (−0.16 pts)'); // quantization's metric change
  expect(text).toContain('3.12× faster'); // distillation
  expect(text).toContain("keeps 98.3% of the teacher's macro-F1 on the whole validation split");
  expect(text).toContain('120 stopped early'); // training table
  expect(text).toContain('180 resumed at 100'); // from a checkpoint, after a lost worker
  expect(text).toContain('removed tooShort 37, tooLong 186, exactDuplicate 1,305, nearDuplicate 876'); // clean counts
  expect(text).toContain('redacted emails 14,382, phones 1,207, ips 2,216, cards 3');
  expect(text).toContain('from run 20260307-090000-c41e9b'); // cached stage
  expect(text).toContain('../20260307-090000-c41e9b/general-collect/records.jsonl');
  expect(text).toContain('domain-clean/records.jsonl 20.9 MiB d498230e626d'); // output: path, size, sha256 prefix
});

test('the screenshot shows the page with its charts painted', async () => {
  const png = path.join(dir, 'report.png');
  await screenshot(pathToFileURL(report.htmlPath).href, png, 1280, 2400);
  const image = PNG.sync.read(await readFile(png));
  expect([image.width, image.height]).toEqual([1280, 2400]);
  let inked = 0;
  let chartBlue = 0; // #4c78a8: train-loss lines, accuracy bars, scatter points
  for (let i = 0; i < image.data.length; i += 4) {
    const [r, g, b] = [image.data[i], image.data[i + 1], image.data[i + 2]];
    if (r < 235 || g < 235 || b < 235) inked++;
    if (Math.abs(r - 0x4c) < 12 && Math.abs(g - 0x78) < 12 && Math.abs(b - 0xa8) < 12) chartBlue++;
  }
  const pixels = image.width * image.height;
  expect(inked / pixels).toBeGreaterThan(0.05);
  expect(chartBlue).toBeGreaterThan(20_000);
});

test('a failed run without ML stages gets a stage table with the error, and no charts', async () => {
  const stages = Object.fromEntries(Object.entries(summary.stages).filter(([, s]) => ['collect', 'clean', 'split'].includes(s.type)));
  stages['domain-split'] = { ...stages['domain-split'], status: 'failed', attempts: 3, outputs: [], metrics: {}, error: 'lost worker <gpu-node-1>' };
  const dataOnly: RunSummary = { ...summary, status: 'failed', stages };
  const out = await writeRunReport(dataOnly, path.join(dir, 'data-only'));
  expect(out.svgPaths).toEqual([]);
  const html = await readFile(out.htmlPath, 'utf8');
  expect(html).not.toContain('<svg');
  expect(html).not.toMatch(/id="(training|evaluation|compression)"/);
  expect(html).toContain('<section id="stages">');
  expect(html).toContain('<b>removed</b> tooShort 37, tooLong 186, exactDuplicate 1,305, nearDuplicate 876');
  expect(html).toContain('<span class="status failed">failed</span>');
  expect(html).toContain('<li class="error"><b>error</b> lost worker &lt;gpu-node-1&gt;</li>');
});
