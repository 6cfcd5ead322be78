/** Fields that name one other stage whose outputs the stage reads (besides `input`). */
export const REFERENCE_FIELDS = ['tokenizer', 'from', 'model', 'teacher', 'initial', 'candidate', 'champion', 'collect', 'replay'] as const;

/** The stage fields that name other stages, in a stage of any shape (validated or raw). */
export function referencesOf(stage: unknown): { inputs: string[]; named: Array<[field: string, stage: string]>; after: string[] } {
  const s = (stage ?? {}) as Record<string, unknown>;
  const names = (v: unknown): string[] =>
    typeof v === 'string' ? [v] : Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  // `model` is a stage name in evaluate/quantize but a shape object in finetune/distill: strings only.
  const named = REFERENCE_FIELDS.filter((f) => typeof s[f] === 'string').map((f): [string, string] => [f, s[f] as string]);
  return { inputs: names(s.input), named, after: names(s.after) };
}

/** Every stage whose outputs a stage reads: `input` first, then named references, without repeats. */
export function readsOf(stage: unknown): string[] {
  const { inputs, named } = referencesOf(stage);
  return [...new Set([...inputs, ...named.map(([, name]) => name)])];
}

/** Every stage a stage waits for: what it reads, then its `after` list, without repeats. */
export function dependenciesOf(stage: unknown): string[] {
  return [...new Set([...readsOf(stage), ...referencesOf(stage).after])];
}

/** A cycle as a list of names (first repeated at the end), or undefined. Ignores unknown names. */
export function findCycle(deps: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, 'visiting');
    stack.push(name);
    for (const dep of deps.get(name) ?? []) {
      if (!deps.has(dep)) continue;
      const cycle = visit(dep);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const name of [...deps.keys()].sort()) {
    const cycle = visit(name);
    if (cycle) return cycle;
  }
  return undefined;
}

/** Stages in an order where each comes after its dependencies; ties broken by name for stable plans. */
export function topologicalOrder(deps: ReadonlyMap<string, readonly string[]>): string[] {
  const remaining = new Map([...deps].map(([name, ds]) => [name, new Set(ds)]));
  const order: string[] = [];
  while (remaining.size > 0) {
    const ready = [...remaining].filter(([, ds]) => ds.size === 0).map(([name]) => name).sort();
    if (ready.length === 0) throw new Error(`dependency cycle among: ${[...remaining.keys()].join(', ')}`);
    for (const name of ready) {
      order.push(name);
      remaining.delete(name);
      for (const ds of remaining.values()) ds.delete(name);
    }
  }
  return order;
}
