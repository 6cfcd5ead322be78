import type { DataRecord } from '../../../activities/data/record';
import { TorchProgramError } from '../../../activities/torch/common';
import { referenceOf, renderTemplate, sftRecords } from '../../../activities/torch/sft';
import { templateFields, templateProblem } from '../../../pipelines/sft-templates';

const mail: DataRecord = { id: 'mail-7', text: 'Lunch is at noon.', label: 'ham', meta: { subject: 'Lunch {today}', lines: 3 } };

describe('sft templates', () => {
  test('fill {text}, {label}, {id} and {meta.<key>}; {{ and }} are literal braces; values are not templates', () => {
    expect(renderTemplate('Write the subject line of this mail:\n\n{text} ({ id }, {label}, {meta.lines}) {{json}}', mail, 'prompt')).toBe('Write the subject line of this mail:\n\nLunch is at noon. (mail-7, ham, 3) {json}');
    expect(renderTemplate('{meta.subject}', mail, 'response')).toBe('Lunch {today}');
    expect(templateFields('{text} {{x}} {meta.subject}')).toEqual(['text', 'meta.subject']);
  });

  test('a record without a field a template names fails, not retried, naming the record and the field', () => {
    const bare: DataRecord = { id: 'mail-8', text: 'no subject here' };
    const fail = () => renderTemplate('{meta.subject}', bare, 'response');
    expect(fail).toThrow(TorchProgramError);
    expect(fail).toThrow(/record "mail-8" has no "meta.subject" for the sft response template/);
    try {
      fail();
    } catch (err) {
      expect((err as TorchProgramError).nonRetryable).toBe(true);
    }
  });

  test('validation: unknown fields and stray braces', () => {
    expect(templateProblem('{text} and {meta.subject}')).toBeUndefined();
    expect(templateProblem('{body}')).toMatch(/"\{body\}" names no record field/);
    expect(templateProblem('a } b')).toMatch(/unmatched/);
    expect(templateProblem('{{ok}}')).toBeUndefined();
  });
});

describe('sftRecords', () => {
  test('templates build system, user and assistant turns; the reference is the reply', () => {
    const [r] = sftRecords([mail], { prompt: 'Subject for: {text}', response: '{meta.subject}', system: 'You write subject lines.' }, 'sft');
    expect(r.messages).toEqual([
      { role: 'system', content: 'You write subject lines.' },
      { role: 'user', content: 'Subject for: Lunch is at noon.' },
      { role: 'assistant', content: 'Lunch {today}' },
    ]);
    expect(referenceOf(r)).toBe('Lunch {today}');
    expect(r.id).toBe('mail-7');
  });

  test("without templates: the record's own messages, or prompt and response (top-level or in meta)", () => {
    const own = { id: 'a', text: '', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] } as unknown as DataRecord;
    const pair: DataRecord = { id: 'b', text: '', meta: { prompt: 'q', response: 'r' } };
    expect(sftRecords([own, pair], undefined, 'sft').map((r) => r.messages)).toEqual([
      [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }],
      [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'r' }],
    ]);
    expect(() => sftRecords([mail], undefined, 'sft')).toThrow(/record "mail-7" has neither "messages" nor "prompt" and "response".*sft: \{ prompt:/);
    const endsWithUser = { id: 'c', text: '', messages: [{ role: 'user', content: 'hi' }] } as unknown as DataRecord;
    expect(() => sftRecords([endsWithUser], undefined, 'sft')).toThrow(/ending with the assistant's reply/);
  });
});
