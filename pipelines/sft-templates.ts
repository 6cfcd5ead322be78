// The templates of a finetune stage's `sft` block: `{text}`, `{label}`, `{id}`, `{meta.<key>}`,
// with `{{` and `}}` for literal braces. Checked at validation here; rendered per record by the
// torch engine (activities/torch/sft.ts).

/** A placeholder, or an escaped brace. */
const PLACEHOLDER = /\{\{|\}\}|\{([^{}]*)\}/g;

/** The fields a template names, in order (`text`, `meta.subject`, ...). */
export function templateFields(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].flatMap((m) => (m[1] === undefined ? [] : [m[1].trim()]));
}

/** Why a template cannot be rendered from records, or undefined when it can. */
export function templateProblem(template: string): string | undefined {
  for (const field of templateFields(template)) {
    if (!/^(text|label|id|meta\.[^\s{}]+)$/.test(field)) return `"{${field}}" names no record field; use {text}, {label}, {id} or {meta.<key>} (write {{ and }} for literal braces)`;
  }
  if (/[{}]/.test(template.replace(PLACEHOLDER, ''))) return 'an unmatched "{" or "}"; write {{ and }} for literal braces';
  return undefined;
}

/** `template` with each placeholder replaced by `value(field)`; `missing(field)` is thrown where it has none. */
export function fillTemplate(template: string, value: (field: string) => string | undefined, missing: (field: string) => Error): string {
  return template.replace(PLACEHOLDER, (whole: string, name: string | undefined) => {
    if (name === undefined) return whole[0];
    const filled = value(name.trim());
    if (filled === undefined) throw missing(name.trim());
    return filled;
  });
}
