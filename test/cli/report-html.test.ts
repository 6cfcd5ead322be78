import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { formatHeadline } from '../../cli/format';
import { robustnessRows } from '../../cli/report/charts';
import { flattenConfig, renderReportHtml, sampleGenerations, samplePredictions } from '../../cli/report/html';
import { buildReportModel } from '../../cli/report/report-model';
import type { RunSummary } from '../../workflows/types';

// The report's page and the CLI headline on the fixture run, changed where a case needs it:
// declared comparisons, stored predictions, a quantized model slower than its original.

const fixture = () => JSON.parse(readFileSync(path.join(__dirname, '../fixtures/report/summary.json'), 'utf8')) as RunSummary;

/** 60 test records; `wrong` of them mispredicted (the first ones), ids and labels shared. */
const predictions = (wrong: number) =>
  Array.from({ length: 60 }, (_, i) => {
    const label = i % 3 === 0 ? 'spam' : 'ham';
    return { id: `mail-${i}`, label, predicted: i < wrong ? (label === 'spam' ? 'ham' : 'spam') : label, text: i === 0 ? 'Buy <b>now</b> & save' : `text ${i}` };
  });

function changed(): RunSummary {
  const summary = fixture();
  summary.comparisons = [
    { name: 'two-phase vs single-phase', candidate: 'evaluate-two-phase', baseline: 'evaluate-single-phase' },
    { name: 'int8 vs float student', candidate: 'evaluate-student-int8', baseline: 'evaluate-student' },
  ];
  summary.stages['evaluate-two-phase'].metrics.predictions = predictions(3);
  summary.stages['evaluate-single-phase'].metrics.predictions = predictions(20);
  Object.assign(summary.stages['quantize-student'].metrics, { latencyBeforeMs: 5.25, latencyAfterMs: 7.01 });
  summary.stages['domain-two-phase'].config = { objective: 'classify', steps: 200, optimizer: { lr: 0.001, weightDecay: 0.01 }, lora: { rank: 8, targets: ['query', 'value'] } };
  return summary;
}

const html = (summary: RunSummary) => renderReportHtml(buildReportModel(summary), []);

test('declared comparisons become cards and lines, with a bootstrap interval where predictions exist', () => {
  const page = html(changed());
  expect(page).toContain('<h3>two-phase vs single-phase</h3>');
  expect(page).toContain('<p class="muted">No confidence interval: per-record predictions are not available');
  expect(page).toMatch(/macro-F1 89\.5% → <b>95\.3%<\/b> \(\+5\.8 pts, \+6\.5%; 95% CI \+\d+\.\d pts to \+\d+\.\d pts, 60 records\)/);
  // The int8 student is worse than the float one on both metrics: flagged, and without predictions no interval.
  expect(page).toMatch(/accuracy 94\.9% → <b>94\.7%<\/b> \(−0\.2 pts, −0\.2%\) <span class="muted" title="per-record predictions are not available[^"]*">\(no interval\)<\/span> <span class="worse">⚠ worse than the baseline<\/span>/);
});

test('a quantized model slower than its float original is flagged in the card and the table', () => {
  const page = html(changed());
  expect(page).toContain('latency 5.25 → 7.01 ms <span class="worse">⚠ slower than the float model</span>');
  expect(page).toContain('7.01 ms <span class="worse" title="the quantized model is slower than its float original">⚠ slower</span>');
  expect(html(fixture())).not.toContain('⚠ slower'); // 5.52 -> 5.49 ms: faster, no flag
});

test('the robustness chart and the evaluation table agree in sign', () => {
  const summary = fixture();
  const model = buildReportModel(summary);
  const rows = robustnessRows(model.evaluations);
  const drop = (summary.stages['evaluate-two-phase'].metrics.robustness as { drop: { macroF1: number } }).drop.macroF1;
  expect(drop).toBeGreaterThan(0); // the fixture's model got worse on perturbed inputs
  expect(rows.find((r) => r.stage === 'evaluate-two-phase' && r.metric === 'macro-F1')!.change).toBeCloseTo(-drop * 100, 10);
  expect(html(summary)).toContain(`<td class="num">−${(drop * 100).toFixed(1)} pts</td>`);
  expect(formatHeadline(summary)).toContain(`(perturbed inputs: macro-F1 -${(drop * 100).toFixed(1)} pts)`);
  // a model that got better on perturbed inputs shows a positive change in all three
  (summary.stages['evaluate-two-phase'].metrics.robustness as { drop: { macroF1: number } }).drop.macroF1 = -0.017;
  const improved = robustnessRows(buildReportModel(summary).evaluations).find((r) => r.stage === 'evaluate-two-phase' && r.metric === 'macro-F1')!;
  expect(improved.change).toBeCloseTo(1.7, 10);
  expect(html(summary)).toContain('<td class="num">+1.7 pts</td>');
  expect(formatHeadline(summary)).toContain('(perturbed inputs: macro-F1 +1.7 pts)');
});

test('the student\'s F1 values each say what they were measured on', () => {
  const summary = fixture();
  summary.stages['evaluate-student'].metrics.split = 'test';
  const page = html(summary);
  expect(page).toContain('<th class="num">best val acc / F1 (in training)</th>');
  expect(page).toContain('validation during training on the first <code>validationBatches</code> batches');
  expect(page).toMatch(/<td><code>evaluate-student<\/code><\/td><td><code>distill-student<\/code><\/td><td>test \([\d,]+\)<\/td>/);
  expect(formatHeadline(summary)).toMatch(/ {2}evaluate-student: accuracy 0\.\d{3} {2}macro-F1 0\.936 on test/);
  expect(formatHeadline(summary)).toContain('student/teacher macro-F1 on the validation split');
  expect(page).toContain('<th class="num">student F1 (validation)</th>');
  expect(page).toContain('<th class="num">student F1 (test)</th>');
  expect(page).toContain('93.6%<br><span class="muted"><code>evaluate-student</code></span>');
  expect(page).toContain("keeps 98.3% of the teacher's macro-F1 on the whole validation split");
});

test('training configuration and sample predictions, escaped', () => {
  const page = html(changed());
  expect(page).toContain('<h3>Training configuration</h3>');
  expect(page).toContain('<li><b>optimizer.lr</b> 0.001</li>');
  expect(page).toContain('<li><b>lora.targets</b> query, value</li>');
  expect(page).toContain('<h3>Sample predictions: <code>evaluate-two-phase</code> <span class="muted">(3 of 60 wrong; the first wrong ones shown first)</span></h3>');
  expect(page).toContain('<tr class="wrong"><td><code>mail-0</code></td><td>Buy &lt;b&gt;now&lt;/b&gt; &amp; save</td><td>spam</td><td>ham ✗</td></tr>');
  expect(samplePredictions(predictions(3), 8).map((r) => r.id)).toEqual(['mail-0', 'mail-1', 'mail-2', 'mail-3', 'mail-4', 'mail-5', 'mail-6', 'mail-7']);
  expect(samplePredictions(predictions(30), 4).map((r) => r.label === r.predicted)).toEqual([false, false, true, true]);
  expect(flattenConfig({ a: { b: 1, c: null }, d: [1, 2] })).toEqual([['a.b', '1'], ['d', '1, 2']]);
});

test('generations are sampled by ROUGE-L, lowest first then highest, each once', () => {
  const rows = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2].map((rougeL, i) => ({ id: `g${i}`, rougeL }));
  expect(sampleGenerations(rows, 4).map((r) => r.rougeL)).toEqual([0.1, 0.2, 0.9, 0.7]);
  expect(sampleGenerations(rows, 8).map((r) => r.id).sort()).toEqual(rows.map((r) => r.id).sort());
  expect(sampleGenerations(rows.slice(0, 1), 4).map((r) => r.id)).toEqual(['g0']);
});

test('the CLI headline shows declared comparisons and says when a result is worse', () => {
  const headline = formatHeadline(changed());
  expect(headline).toMatch(/ {2}two-phase vs single-phase: macroF1 0\.895 -> 0\.953 \(\+0\.058, \+6\.5% relative; 95% CI \+0\.\d{3} to \+0\.\d{3}\)\n/);
  expect(headline).toMatch(/int8 vs float student: macroF1 0\.936 -> 0\.933 \(-0\.003, -0\.3% relative\) {2}WORSE than the baseline/);
  expect(headline).toContain('latency 5.25 -> 7.01 ms  WORSE: slower than the float model');
  // Without declared comparisons (a run from before them), names still pair two-phase with single-phase.
  expect(formatHeadline(fixture())).toContain('  two-phase vs single-phase: macroF1 0.895 -> 0.953');
});
