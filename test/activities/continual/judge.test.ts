import type { SplitEvaluation } from '../../../activities/continual/state';
import { judge } from '../../../activities/continual/stages';

// The gate as promote applies it: evaluations are the candidate's (and champion's) metric on each
// cycle's test split; `cycle` names the new one. Defaults as the schema gives them.
const gate = (overrides: { minGain?: number; maxForgetting?: number; min?: number } = {}) => ({
  metric: 'accuracy' as const,
  gate: { minGain: 0, maxForgetting: 0.02, ...overrides },
});
const split = (cycle: number, candidate: number, champion?: number): SplitEvaluation => ({ cycle, candidate, ...(champion !== undefined ? { champion } : {}), examples: 100 });

describe('judge', () => {
  test('promotes the first cycle, which has no champion, as the first champion', () => {
    const verdict = judge(gate(), [split(1, 0.61)], 1);
    expect(verdict.promoted).toBe(true);
    expect(verdict.reason).toMatch(/^first champion: no earlier champion to compare with$/);
    expect(verdict.gain).toBeUndefined();
    expect(verdict.forgetting).toBeUndefined();
  });

  test('a min floor keeps a first cycle below it out, and lets one above it in', () => {
    const below = judge(gate({ min: 0.8 }), [split(1, 0.7)], 1);
    expect(below.promoted).toBe(false);
    expect(below.reason).toBe('kept out: accuracy 0.7 < min 0.8');
    const above = judge(gate({ min: 0.8 }), [split(1, 0.85)], 1);
    expect(above.promoted).toBe(true);
    expect(above.reason).toBe('first champion: no earlier champion to compare with; accuracy 0.85 ≥ min 0.8');
  });

  test('a min floor also refuses a candidate that beats the champion', () => {
    const verdict = judge(gate({ min: 0.9 }), [split(2, 0.85, 0.8)], 2);
    expect(verdict.promoted).toBe(false);
    expect(verdict.reason).toMatch(/^kept the champion: accuracy 0\.85 < min 0\.9/);
  });

  test('refuses a gain below minGain, naming the gain and minGain', () => {
    const verdict = judge(gate({ minGain: 0 }), [split(2, 0.84, 0.85)], 2);
    expect(verdict.promoted).toBe(false);
    expect(verdict.gain).toBe(-0.01);
    expect(verdict.reason).toBe('kept the champion: gain -0.01 < minGain 0 on the new split');
    // The same candidate passes a gate that tolerates a small loss.
    expect(judge(gate({ minGain: -0.02 }), [split(2, 0.84, 0.85)], 2).promoted).toBe(true);
  });

  test('refuses mean forgetting above maxForgetting, naming the forgetting', () => {
    const verdict = judge(gate(), [split(1, 0.8, 0.85), split(2, 0.9, 0.85)], 2);
    expect(verdict.promoted).toBe(false);
    expect(verdict.gain).toBe(0.05);
    expect(verdict.forgetting).toEqual({ mean: 0.05, max: 0.05 });
    expect(verdict.reason).toBe('kept the champion: forgetting 0.05 > maxForgetting 0.02 on 1 earlier split(s)');
  });

  test('names both failures when gain and forgetting both fail', () => {
    const verdict = judge(gate(), [split(1, 0.7, 0.8), split(2, 0.8, 0.85)], 2);
    expect(verdict.promoted).toBe(false);
    expect(verdict.reason).toMatch(/gain -0\.05 < minGain 0 .*; forgetting 0\.1 > maxForgetting 0\.02/);
  });

  test('promotes when gain and forgetting both pass, saying why', () => {
    const verdict = judge(gate(), [split(1, 0.84, 0.85), split(2, 0.9, 0.86)], 2);
    expect(verdict.promoted).toBe(true);
    expect(verdict.gain).toBe(0.04);
    expect(verdict.forgetting).toEqual({ mean: 0.01, max: 0.01 });
    expect(verdict.reason).toBe('gain +0.04 ≥ minGain 0 on the new split; forgetting 0.01 ≤ maxForgetting 0.02 on 1 earlier split(s)');
  });

  test('computes forgetting (mean and max) over earlier splits only, not the new one', () => {
    // Drops on cycles 1 and 2 are 0.03 and 0.01; the new cycle 3's −0.1 (a gain) must not dilute them.
    const evaluations = [split(1, 0.82, 0.85), split(3, 0.9, 0.8), split(2, 0.87, 0.88)];
    const verdict = judge(gate(), evaluations, 3);
    expect(verdict.forgetting).toEqual({ mean: 0.02, max: 0.03 });
    expect(verdict.reason).toMatch(/forgetting 0\.02 ≤ maxForgetting 0\.02 on 2 earlier split\(s\)/);
    expect(verdict.promoted).toBe(true);
  });

  test('ignores earlier splits the champion was not evaluated on', () => {
    const verdict = judge(gate(), [split(1, 0.5), split(2, 0.9, 0.8)], 2);
    expect(verdict.forgetting).toBeUndefined();
    expect(verdict.promoted).toBe(true);
  });

  test('negative forgetting (the candidate improved on old splits) passes even a zero budget', () => {
    const verdict = judge(gate({ maxForgetting: 0 }), [split(1, 0.9, 0.85), split(2, 0.92, 0.8), split(3, 0.9, 0.88)], 3);
    expect(verdict.forgetting).toEqual({ mean: -0.085, max: -0.05 });
    expect(verdict.promoted).toBe(true);
  });

  test('an empty new test split cannot be judged: the champion is kept, saying how to fix it', () => {
    const verdict = judge(gate(), [split(1, 0.9, 0.91)], 2);
    expect(verdict.promoted).toBe(false);
    expect(verdict.gain).toBeUndefined();
    expect(verdict.reason).toBe("kept the champion: this cycle's test split is empty, so the candidate cannot be judged on new data; collect more new data per cycle or raise the split's test ratio");
    expect(judge(gate(), [], 1).reason).toMatch(/^kept out: this cycle's test split is empty/);
  });
});
