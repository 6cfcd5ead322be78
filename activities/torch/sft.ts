import type { DataRecord } from '../data';
import type { FinetuneOptions } from '../../pipelines/stage-types';
import { fillTemplate } from '../../pipelines/sft-templates';
import { TorchProgramError } from './common';

// The `sft` objective's records: each becomes a conversation (`messages`, the last the assistant's
// reply) before the Python side formats it with the base's chat template. Built here, from the
// spec's templates or the record's own fields, so that a record that cannot become one fails the
// stage at once, naming the record and the field.

/** The spec's `sft` block: templates for the user's prompt, the assistant's response and a system message. */
export type SftTemplates = NonNullable<FinetuneOptions['sft']>;

export interface ChatMessage {
  role: string;
  content: string;
}

/** A record with its conversation. */
export type SftRecord = DataRecord & { messages: ChatMessage[] };

/** `template` rendered from `record`; throws (non-retryable) naming the record and the field it lacks. */
export function renderTemplate(template: string, record: DataRecord, what: string): string {
  return fillTemplate(
    template,
    (field) => {
      const value = fieldOf(record, field);
      return value === undefined || value === null || typeof value === 'object' ? undefined : String(value);
    },
    (field) =>
      new TorchProgramError(
        `record "${record.id}" has no "${field}" for the sft ${what} template: every record needs the fields the templates name; filter such records out upstream, or change the template (clean with keepHeaders: [subject] puts a mail's Subject in meta.subject)`,
        true,
      ),
  );
}

function fieldOf(record: DataRecord, field: string): unknown {
  if (field.startsWith('meta.')) return record.meta?.[field.slice('meta.'.length)];
  return (record as unknown as Record<string, unknown>)[field];
}

/**
 * Each record as a conversation: rendered from `templates` when given; else the record's own
 * `messages`, or its `prompt` and `response` (top-level or in `meta`). `stage` names where it failed.
 */
export function sftRecords(records: readonly DataRecord[], templates: SftTemplates | undefined, stage: string): SftRecord[] {
  return records.map((record) => ({ ...record, messages: templates ? rendered(record, templates) : ownMessages(record, stage) }));
}

function rendered(record: DataRecord, t: SftTemplates): ChatMessage[] {
  return [
    ...(t.system ? [{ role: 'system', content: renderTemplate(t.system, record, 'system') }] : []),
    { role: 'user', content: renderTemplate(t.prompt, record, 'prompt') },
    { role: 'assistant', content: renderTemplate(t.response, record, 'response') },
  ];
}

function ownMessages(record: DataRecord, stage: string): ChatMessage[] {
  const raw = record as unknown as Record<string, unknown>;
  const pick = (key: string) => raw[key] ?? record.meta?.[key];
  const messages = pick('messages');
  if (messages !== undefined) {
    const ok = Array.isArray(messages) && messages.length > 0 && messages.every((m) => m && typeof m === 'object' && typeof (m as ChatMessage).role === 'string' && typeof (m as ChatMessage).content === 'string');
    if (!ok || (messages as ChatMessage[]).at(-1)!.role !== 'assistant') {
      throw new TorchProgramError(`stage "${stage}": record "${record.id}" has "messages" that are not a list of {role, content} strings ending with the assistant's reply`, true);
    }
    return (messages as ChatMessage[]).map((m) => ({ role: m.role, content: m.content }));
  }
  const [prompt, response] = [pick('prompt'), pick('response')];
  if (typeof prompt === 'string' && typeof response === 'string') return [{ role: 'user', content: prompt }, { role: 'assistant', content: response }];
  throw new TorchProgramError(
    `stage "${stage}": record "${record.id}" has neither "messages" nor "prompt" and "response": an sft record needs a conversation; give the stage an sft block that builds one from its fields, e.g. sft: { prompt: "Write the subject line of this mail:\\n\\n{text}", response: "{meta.subject}" }`,
    true,
  );
}

/** The reply an sft record teaches: its last message's content. */
export function referenceOf(record: SftRecord): string {
  return record.messages[record.messages.length - 1].content;
}
