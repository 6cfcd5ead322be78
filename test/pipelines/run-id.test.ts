import { newRunId } from '../../cli/runs';
import { checkRunArgument, checkRunId, checkScheduleId, InvalidRunIdError, RUN_ID_PATTERN, runIdProblem } from '../../pipelines/run-id';
import { runIdFromWorkflowId } from '../../workflows/run-id';

// One rule for run ids typed by a user: a single path segment, never ambiguous in a workflow id.

describe('run ids', () => {
  test('ids Tempered makes follow the rule: generated and scheduled', () => {
    for (let i = 0; i < 20; i++) expect(runIdProblem(newRunId(new Date(Date.UTC(2026, 10, 27, 3, 0, i))))).toBeUndefined();
    const scheduled = runIdFromWorkflowId('support-mail--support-mail-2026-11-27T03:00:00Z');
    expect(scheduled).toBe('support-mail-2026-11-27T030000Z');
    expect(runIdProblem(scheduled)).toBeUndefined();
    expect(RUN_ID_PATTERN.test('a')).toBe(true);
    expect(runIdProblem('x'.repeat(128))).toBeUndefined();
  });

  test.each([
    ['..', 'it contains ".."'],
    ['../../x', 'it contains ".."'],
    ['', 'it is empty'],
    ['a/b', 'it contains a path separator'],
    ['a\\b', 'it contains a path separator'],
    ['x'.repeat(129), 'it has 129 characters'],
    ['x'.repeat(1000), 'it has 1000 characters'],
    ['x--y', 'it contains "--", which separates the pipeline from the run id in workflow ids'],
    ['-x', 'it contains "-" at the start'],
    ['.x', 'it contains "." at the start'],
    ['a b', 'it contains " "'],
    ['run:1', 'it contains ":"'],
  ])('%j is refused: %s', (id, reason) => {
    expect(runIdProblem(id)).toBe(reason);
    expect(() => checkRunId(id)).toThrow(InvalidRunIdError);
    try {
      checkRunId(id);
    } catch (err) {
      const message = (err as Error).message;
      expect(message).not.toContain('\n');
      expect(message).toContain('(pattern ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$)');
      expect(message.length).toBeLessThan(400); // a 1000-character id is cut when quoted
    }
  });

  test('a workflow id argument is <pipeline>--<run id>, a scheduled one with its tick time', () => {
    expect(checkRunArgument('support-mail--20261127-030000-a1b2c3')).toBe('support-mail--20261127-030000-a1b2c3');
    expect(checkRunArgument('support-mail--nightly-2026-11-27T03:00:00Z')).toBe('support-mail--nightly-2026-11-27T03:00:00Z');
    expect(() => checkRunArgument('p--../../x')).toThrow(/its run id part "..\/..\/x" is invalid: it contains "\.\."/);
    expect(() => checkRunArgument('p--a/b')).toThrow(/path separator/);
    expect(() => checkRunArgument('P Q--x')).toThrow(/its pipeline part "P Q" is not a pipeline name/);
    expect(() => checkRunArgument('--x')).toThrow(/pipeline part "" is not a pipeline name/);
    expect(() => checkRunArgument('p--')).toThrow(/it is empty/);
    expect(() => checkRunArgument('../../x')).toThrow(/^invalid run id "..\/..\/x": it contains "\.\."/);
  });

  test('a schedule id follows the rule with room for the tick time', () => {
    expect(checkScheduleId('nightly')).toBe('nightly');
    expect(() => checkScheduleId('x'.repeat(101))).toThrow(/^invalid schedule id .*it has 101 characters/);
    expect(() => checkScheduleId('a/b')).toThrow(/^invalid schedule id "a\/b": it contains a path separator; it follows the run id rule/);
  });
});
