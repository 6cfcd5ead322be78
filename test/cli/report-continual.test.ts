import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { buildCharts, forgettingChart, gainForgettingChart, gainForgettingRows } from '../../cli/report/charts';
import { renderReportHtml } from '../../cli/report/html';
import { writeRunReport } from '../../cli/report/report';
import { buildReportModel, forgettingMatrix } from '../../cli/report/report-model';
import type { RunSummary, StageProgress } from '../../workflows/types';

// The continual view of the report: a run whose `promote` stage carries the history of three
// retrain cycles. Fabricated: the section reads only the promote stage's metrics.

function stage(type: string, metrics: Record<string, unknown>): StageProgress {
  return { status: 'succeeded', type, taskQueue: 'cpu', attempts: 1, cached: false, outputs: [], metrics };
}

const history = [
  {
    cycle: 1,
    runId: 'c1',
    promoted: true,
    reason: 'first cycle: no champion yet',
    candidateVersion: 1,
    evaluations: [{ cycle: 1, candidate: 0.91, examples: 200 }],
  },
  {
    cycle: 2,
    runId: 'c2',
    promoted: true,
    reason: 'gain +3.0 pts, forgetting +0.5 pts',
    candidateVersion: 2,
    championVersion: 1,
    gain: 0.03,
    forgetting: { mean: 0.005, max: 0.005 },
    evaluations: [
      { cycle: 1, candidate: 0.905, champion: 0.91, examples: 200 },
      { cycle: 2, candidate: 0.93, champion: 0.9, examples: 180 },
    ],
  },
  {
    cycle: 3,
    runId: 'c3',
    promoted: false,
    reason: 'forgetting +4.0 pts > 2.0 pts',
    candidateVersion: 3,
    championVersion: 2,
    gain: 0.02,
    forgetting: { mean: 0.04, max: 0.06 },
    evaluations: [
      { cycle: 1, candidate: 0.845, champion: 0.905, examples: 200 },
      { cycle: 2, candidate: 0.91, champion: 0.93, examples: 180 },
      { cycle: 3, candidate: 0.95, champion: 0.93, examples: 220 },
    ],
  },
];

const promoteMetrics = {
  registry: 'spam-classifier',
  metric: 'macroF1',
  cycle: 3,
  candidateVersion: 3,
  championVersion: 2,
  promoted: false,
  reason: 'forgetting +4.0 pts > 2.0 pts',
  gain: 0.02,
  forgetting: { mean: 0.04, max: 0.06 },
  gate: { minGain: 0, maxForgetting: 0.02 },
  history,
};

const summary: RunSummary = {
  runId: 'c3',
  workflowId: 'spam-continual--c3',
  pipeline: 'spam-continual',
  status: 'succeeded',
  stages: {
    collect: stage('collect', { records: 1200, newRecords: 300 }),
    train: stage('finetune', { history: [{ step: 1, loss: 0.7 }, { step: 2, loss: 0.5 }] }),
    promote: stage('promote', promoteMetrics),
  },
};

describe('continual view of a run with a promote stage', () => {
  const model = buildReportModel(summary);

  test('reads the promote stage: this cycle and every cycle before it', () => {
    expect(model.promotions).toHaveLength(1);
    const [p] = model.promotions;
    expect(p).toMatchObject({ name: 'promote', registry: 'spam-classifier', metric: 'macroF1', cycle: 3, candidateVersion: 3, championVersion: 2, promoted: false, gate: { minGain: 0, maxForgetting: 0.02 } });
    expect(p.history.map((c) => c.cycle)).toEqual([1, 2, 3]);
    expect(p.history[0].championVersion).toBeUndefined();
  });

  test('the forgetting matrix: one row per cycle model, cells only on its own and earlier splits', () => {
    const cells = forgettingMatrix(model.promotions[0]);
    expect(cells.map((c) => [c.model, c.split, c.value])).toEqual([
      ['cycle 1 (v1, promoted)', 1, 0.91],
      ['cycle 2 (v2, promoted)', 1, 0.905],
      ['cycle 2 (v2, promoted)', 2, 0.93],
      ['cycle 3 (v3)', 1, 0.845],
      ['cycle 3 (v3)', 2, 0.91],
      ['cycle 3 (v3)', 3, 0.95],
    ]);
    expect(cells.every((c) => c.split <= c.cycle)).toBe(true);
    expect(cells[1]).toEqual({ model: 'cycle 2 (v2, promoted)', cycle: 2, split: 1, value: 0.905, champion: 0.91, examples: 200, promoted: true });
  });

  test('the heat map plots the matrix; the bars plot gain and mean forgetting in points, with the gate as rules', () => {
    const [p] = model.promotions;
    const heat = forgettingChart(p)!;
    expect(heat.id).toBe('forgetting-promote');
    expect(heat.spec.data).toEqual({ values: forgettingMatrix(p) });

    const rows = gainForgettingRows(p);
    expect(rows.map((r) => [r.cycle, r.series])).toEqual([
      [2, 'gain'],
      [2, 'forgetting (mean)'],
      [3, 'gain'],
      [3, 'forgetting (mean)'],
    ]);
    expect(rows.map((r) => r.points)).toEqual([expect.closeTo(3, 10), expect.closeTo(0.5, 10), expect.closeTo(2, 10), expect.closeTo(4, 10)]);
    const bars = gainForgettingChart(p)!;
    expect(bars.id).toBe('gain-forgetting-promote');
    expect(bars.spec.data).toEqual({ values: rows });
    const layers = (bars.spec as { layer: Array<{ mark: { type: string }; data?: { values: Array<{ points: number }> } }> }).layer;
    expect(layers.filter((l) => l.mark.type === 'rule').map((l) => l.data!.values[0].points)).toEqual([0, 2]);

    expect(buildCharts(model).map((c) => c.id)).toEqual(['loss-curves', 'forgetting-promote', 'gain-forgetting-promote']);
  });

  test('the page has the continual section: verdict, gate, both figures and the cycle table', () => {
    const html = renderReportHtml(model, []);
    expect(html).toContain('<section id="continual">');
    expect(html).toContain('candidate <b>v3</b> kept out; v2 stays champion (forgetting +4.0 pts &gt; 2.0 pts)');
    expect(html).toContain('Gate on macro-F1: gain ≥ +0.0 pts on the new split, mean forgetting ≤ +2.0 pts on earlier splits.');
    const table = html.slice(html.indexOf('<h3>Cycles</h3>'));
    expect(table).toMatch(/<th class="num">cycle<\/th><th>run<\/th><th class="num">candidate<\/th><th class="num">champion<\/th><th class="num">macro-F1 on new split<\/th><th class="num">gain<\/th><th class="num">forgetting mean<\/th><th class="num">forgetting max<\/th><th>promoted<\/th><th>reason<\/th>/);
    const rows = table.match(/<tr><td class="num">\d+<\/td>.*?<\/tr>/g)!;
    expect(rows).toHaveLength(3);
    expect(rows[0]).toContain('<code>c1</code>');
    expect(rows[0]).toContain('<span class="muted">–</span>'); // no champion, gain or forgetting in cycle 1
    expect(rows[2]).toContain('<td class="num">95.0%</td><td class="num">+2.0 pts</td><td class="num">+4.0 pts</td><td class="num">+6.0 pts</td>');
    expect(rows[2]).toContain('<span class="status kept">kept out</span>');
    expect(html).toContain('Continual cycle 3'); // headline card
  });

  test('the charts render to SVG with every cell and bar', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'tempered-continual-report-'));
    try {
      const files = await writeRunReport(summary, dir);
      expect(files.svgPaths.map((p) => path.basename(p))).toEqual(['loss-curves.svg', 'forgetting-promote.svg', 'gain-forgetting-promote.svg']);
      const heat = await readFile(files.svgPaths[1], 'utf8');
      expect(heat.match(/aria-roledescription="rect mark"/g)).toHaveLength(6);
      for (const text of ['91.0%', '90.5%', '93.0%', '84.5%', '95.0%', 'cycle 2 (v2, promoted)', 'cycle 3 (v3)']) expect(heat).toContain(`>${text}</text>`);
      const bars = await readFile(files.svgPaths[2], 'utf8');
      expect(bars.match(/aria-roledescription="bar"/g)).toHaveLength(4);
      expect(bars).toContain('>max forgetting 2.0 pts</text>');
      const html = await readFile(files.htmlPath, 'utf8');
      expect(html).toContain('<figure id="forgetting-promote"');
      expect(html).toContain('<figure id="gain-forgetting-promote"');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('runs without a continual section', () => {
  test('no promote stage: no promotions, no continual charts, no section', () => {
    const { promote: _, ...stages } = summary.stages;
    const model = buildReportModel({ ...summary, stages });
    expect(model.promotions).toEqual([]);
    expect(buildCharts(model).map((c) => c.id)).toEqual(['loss-curves']);
    expect(renderReportHtml(model, [])).not.toContain('id="continual"');
  });

  test('a promote stage without a usable history is skipped, not trusted', () => {
    const model = buildReportModel({
      ...summary,
      stages: {
        a: stage('promote', { ...promoteMetrics, history: 'none' }),
        b: stage('promote', { ...promoteMetrics, metric: 'bleu' }),
        c: stage('promote', {}),
      },
    });
    expect(model.promotions).toEqual([]);
    expect(buildCharts(model)).toEqual([]);
  });
});
