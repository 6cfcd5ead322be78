import { intervalOrderProblem } from './activity-options';
import { parseDuration } from './duration';
import { dependenciesOf, findCycle, referencesOf } from './graph';
import { engineRules } from './engines';
import { DEFAULT_RETRY } from './schema';
import { MODEL_STAGE_TYPES } from './stage-facts';
import { didYouMean } from './suggest';

// Cross-field rules the schema cannot express, grouped by area. They read the raw YAML value
// tolerantly, so they report alongside schema problems in the same pass.

export interface RuleProblem {
  path: Array<string | number>;
  message: string;
}

type RawStage = Record<string, unknown>;

/** Every cross-field and graph problem in a raw spec. */
export function checkRules(raw: unknown): RuleProblem[] {
  const document = documentRules(raw);
  if (document.length > 0) return document;
  const keys = reservedKeyRules(raw, []);
  const retry = retryRules(raw as Record<string, unknown>);
  const stagesValue = (raw as { stages?: unknown } | null)?.stages;
  if (!stagesValue || typeof stagesValue !== 'object' || Array.isArray(stagesValue)) return [...keys, ...retry];
  // Without a prototype, a reference to "constructor" or "toString" is not found on every map.
  const stages: Record<string, RawStage> = Object.assign(Object.create(null) as Record<string, RawStage>, stagesValue);
  return [...keys, ...retry, ...graphRules(stages), ...dataRules(stages), ...trainingRules(stages), ...engineRules(stages), ...reportRules(raw as Record<string, unknown>, stages)];
}

/** `report.compare`: both sides name evaluate stages of this spec, and not the same one. */
function reportRules(raw: Record<string, unknown>, stages: Record<string, RawStage>): RuleProblem[] {
  const compare = (raw.report as { compare?: unknown } | null | undefined)?.compare;
  if (!Array.isArray(compare)) return [];
  const problems: RuleProblem[] = [];
  const evaluations = Object.keys(stages).filter((name) => stages[name]?.type === 'evaluate');
  compare.forEach((entry, i) => {
    if (!entry || typeof entry !== 'object') return;
    const { candidate, baseline } = entry as Record<string, unknown>;
    for (const [field, ref] of [['candidate', candidate], ['baseline', baseline]] as const) {
      if (typeof ref !== 'string') continue;
      const type = stages[ref]?.type;
      if (type === 'evaluate') continue;
      const listed = evaluations.length > 0 ? `evaluate stages in this spec: ${evaluations.join(', ')}` : 'this spec has no evaluate stage';
      problems.push({
        path: ['report', 'compare', i, field],
        message:
          type === undefined
            ? `unknown stage "${ref}"${didYouMean(ref, evaluations)}; a comparison names evaluate stages (${listed})`
            : `"${ref}" is ${withArticle(String(type))} stage; a comparison names evaluate stages (${listed})`,
      });
    }
    if (typeof candidate === 'string' && candidate === baseline) {
      problems.push({ path: ['report', 'compare', i, 'baseline'], message: `candidate and baseline are both "${candidate}"; compare two different evaluations` });
    }
    const [ours, theirs] = [evaluatedObjective(stages, candidate), evaluatedObjective(stages, baseline)];
    if (ours && theirs && ours !== theirs) {
      problems.push({
        path: ['report', 'compare', i, 'baseline'],
        message: `"${String(candidate)}" evaluates a ${ours} model and "${String(baseline)}" a ${theirs} model; they share no metric, so compare evaluations of the same objective`,
      });
    } else if (ours && Array.isArray((entry as { metrics?: unknown }).metrics)) {
      const reported = OBJECTIVE_METRICS[ours];
      ((entry as { metrics: unknown[] }).metrics).forEach((metric, j) => {
        if (typeof metric === 'string' && !reported.includes(metric)) {
          problems.push({ path: ['report', 'compare', i, 'metrics', j], message: `a ${ours} evaluation does not report "${metric}"; it reports ${reported.join(', ')}` });
        }
      });
    }
  });
  return problems;
}

/** What an evaluation of each objective reports, of the metrics a comparison can name. */
const OBJECTIVE_METRICS: Record<string, readonly string[]> = { classify: ['accuracy', 'macroF1'], 'causal-lm': ['perplexity', 'bleu', 'rougeL'], mlm: ['perplexity'], sft: ['perplexity', 'bleu', 'rougeL'] };

/**
 * The objective of the model an evaluate stage scores, followed through the stages that pass a
 * model on (quantize, champion); undefined where the spec does not say (a broken reference).
 */
function evaluatedObjective(stages: Record<string, RawStage>, evaluation: unknown): string | undefined {
  let name = typeof evaluation === 'string' ? stages[evaluation]?.model : undefined;
  for (let hops = 0; typeof name === 'string' && hops < 64; hops++) {
    const stage = stages[name];
    if (stage?.type === 'finetune') return typeof stage.objective === 'string' ? stage.objective : undefined;
    // A student has its teacher's objective; quantize and champion pass a model on.
    name = stage?.type === 'distill' ? stage.teacher : stage?.type === 'quantize' ? stage.model : stage?.type === 'champion' ? stage.initial : undefined;
  }
  return undefined;
}

/**
 * `__proto__` anywhere: the YAML parser keeps it as a key, but any plain object it is copied into
 * (the validated stages map, a command's env) takes it for its prototype and drops it without a word.
 */
function reservedKeyRules(value: unknown, at: Array<string | number>, depth = 0): RuleProblem[] {
  if (!value || typeof value !== 'object' || depth > 64) return [];
  const problems: RuleProblem[] = [];
  const entries: Array<[string | number, unknown]> = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  for (const [key, child] of entries) {
    if (key === '__proto__') {
      problems.push({
        path: [...at, key],
        message:
          at.length === 1 && at[0] === 'stages'
            ? 'stage name "__proto__" is reserved: JavaScript takes it for an object\'s prototype, so the stage would vanish; rename the stage, e.g. "proto"'
            : 'key "__proto__" is reserved: JavaScript takes it for an object\'s prototype and would drop it silently; rename it',
      });
    }
    problems.push(...reservedKeyRules(child, [...at, key], depth + 1));
  }
  return problems;
}

/** maximumInterval must not be shorter than initialInterval, with each stage's values merged over `defaults.retry`. */
function retryRules(raw: Record<string, unknown>): RuleProblem[] {
  const ms = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? parseDuration(v) : undefined);
  const retryOf = (owner: unknown) => {
    const retry = (owner as { retry?: unknown } | null | undefined)?.retry;
    return retry && typeof retry === 'object' ? (retry as Record<string, unknown>) : {};
  };
  const usable = (v: number | undefined): v is number => v !== undefined && v > 0;
  const defaults = retryOf(raw.defaults);
  const defaultInitial = ms(defaults.initialInterval) ?? DEFAULT_RETRY.initialInterval;
  const defaultMaximum = ms(defaults.maximumInterval) ?? DEFAULT_RETRY.maximumInterval;
  const problems: RuleProblem[] = [];
  if (usable(defaultInitial) && usable(defaultMaximum) && defaultMaximum < defaultInitial) {
    const field = defaults.maximumInterval !== undefined ? 'maximumInterval' : 'initialInterval';
    problems.push({ path: ['defaults', 'retry', field], message: intervalOrderProblem(defaultInitial, defaultMaximum) });
  }
  const stages = raw.stages && typeof raw.stages === 'object' && !Array.isArray(raw.stages) ? Object.entries(raw.stages) : [];
  for (const [name, stage] of stages) {
    const retry = retryOf(stage);
    if (retry.initialInterval === undefined && retry.maximumInterval === undefined) continue;
    const initial = ms(retry.initialInterval) ?? defaultInitial;
    const maximum = ms(retry.maximumInterval) ?? defaultMaximum;
    if (!usable(initial) || !usable(maximum) || maximum >= initial) continue;
    const inherited = {
      initial: retry.initialInterval === undefined ? (defaults.initialInterval === undefined ? 'the default' : 'defaults.retry') : undefined,
      maximum: retry.maximumInterval === undefined ? (defaults.maximumInterval === undefined ? 'the default' : 'defaults.retry') : undefined,
    };
    const field = retry.maximumInterval !== undefined ? 'maximumInterval' : 'initialInterval';
    problems.push({ path: ['stages', name, 'retry', field], message: intervalOrderProblem(initial, maximum, inherited) });
  }
  return problems;
}

/** The file is a YAML mapping: not empty, not a list or a scalar, not a binary file read as text. */
function documentRules(raw: unknown): RuleProblem[] {
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) return [];
  const example = 'start from pipelines/examples/demo.yaml';
  // Bytes that are not UTF-8 decode to U+FFFD; NUL and most C0 controls never occur in YAML.
  if (typeof raw === 'string' && /[\u0000-\u0008\u000e-\u001f\ufffd]/.test(raw)) {
    return [{ path: [], message: `this is not a YAML text file (it holds binary bytes: is it compressed, an image, a program?); pass the path of a pipeline spec, or ${example}` }];
  }
  const found =
    raw === null || raw === undefined ? 'nothing (the file is empty or only comments)' : Array.isArray(raw) ? `a list of ${raw.length} item${raw.length === 1 ? '' : 's'}` : `a single ${typeof raw} value`;
  return [{ path: [], message: `a spec is a YAML mapping of apiVersion, name and stages, found ${found}; ${example}` }];
}

/** Inputs name existing stages, nothing depends on itself, and there are no cycles. */
function graphRules(stages: Record<string, RawStage>): RuleProblem[] {
  const problems: RuleProblem[] = [];
  const names = Object.keys(stages);
  for (const [name, stage] of Object.entries(stages)) {
    const { inputs, after, named } = referencesOf(stage);
    const fields: Array<[string, string[]]> = [['input', inputs], ['after', after], ...named.map(([f, n]): [string, string[]] => [f, [n]])];
    for (const [field, refs] of fields) {
      refs.forEach((ref, i) => {
        const where = ['stages', name, field, ...(Array.isArray(stage?.[field]) ? [i] : [])];
        if (ref === name) {
          problems.push({ path: where, message: `stage "${name}" depends on itself; name an upstream stage instead` });
        } else if (!(ref in stages)) {
          problems.push({
            path: where,
            message: `unknown stage "${ref}"${didYouMean(ref, names)}; stages in this spec: ${names.join(', ')}`,
          });
        }
      });
    }
  }
  const deps = new Map(names.map((n) => [n, dependenciesOf(stages[n]).filter((d) => d !== n)]));
  const cycle = findCycle(deps);
  if (cycle) {
    problems.push({
      path: ['stages', cycle[0], 'input'],
      message: `dependency cycle: ${cycle.join(' -> ')}; remove one of these dependencies (input, after, or a tokenizer/from/model/teacher reference) so data flows one way`,
    });
  }
  return problems;
}

const ONE_INPUT = new Set(['clean', 'augment', 'split']);

/** Data stage rules: input arity, incremental clocks, split ratios, length bounds, MinHash banding. */
function dataRules(stages: Record<string, RawStage>): RuleProblem[] {
  const problems: RuleProblem[] = [];
  for (const [name, stage] of Object.entries(stages)) {
    if (!stage || typeof stage !== 'object') continue;
    const at = (...p: Array<string | number>) => ['stages', name, ...p];
    const { inputs } = referencesOf(stage);
    if (ONE_INPUT.has(stage.type as string) && inputs.length !== 1) {
      problems.push({ path: at('input'), message: `a ${stage.type} stage reads exactly one upstream stage; found ${inputs.length}. Set "input: <stage>"` });
    }
    if (stage.type === 'collect' && Array.isArray(stage.sources)) problems.push(...sourceRules(stage.sources, at), ...incrementalRules(stage, at));
    if (stage.type === 'clean' && Array.isArray(stage.keepHeaders) && stage.keepHeaders.length > 0 && stage.stripMailHeaders !== true) {
      problems.push({ path: at('keepHeaders'), message: 'keepHeaders keeps fields of the mail headers that stripMailHeaders decodes; add "stripMailHeaders: true", or remove keepHeaders' });
    }
    if (stage.type === 'collect' && inputs.length > 0) {
      problems.push({ path: at('input'), message: 'a collect stage reads from "sources", not from other stages; remove "input" or use "after"' });
    }
    if (stage.type === 'augment' && inputs.length === 1 && (stages[inputs[0]] as RawStage | undefined)?.type !== 'split') {
      problems.push({
        path: at('input'),
        message: `augment reads a split stage (it augments only the train split, so no augmented copy leaks into validation or test); "${inputs[0]}" is not a split stage`,
      });
    }
    const ratios = stage.ratios as Record<string, unknown> | undefined;
    if (stage.type === 'split' && ratios && typeof ratios === 'object') {
      const values = ['train', 'validation', 'test'].map((k) => ratios[k]);
      if (values.every((v) => typeof v === 'number')) {
        const sum = (values as number[]).reduce((a, b) => a + b, 0);
        if (Math.abs(sum - 1) > 1e-6) {
          problems.push({
            path: at('ratios'),
            message: `train + validation + test must sum to 1, found ${values.join(' + ')} = ${Number(sum.toFixed(6))}; e.g. { train: 0.7, validation: 0.1, test: 0.2 }`,
          });
        }
      }
    }
    if (typeof stage.minChars === 'number' && typeof stage.maxChars === 'number' && stage.minChars > stage.maxChars) {
      problems.push({ path: at('minChars'), message: `minChars (${stage.minChars}) is greater than maxChars (${stage.maxChars}); no record could pass` });
    }
    for (const field of ['nearDedup', 'groupNearDuplicates']) {
      const lsh = stage[field] as { numPermutations?: unknown; bands?: unknown } | undefined;
      const perms = typeof lsh?.numPermutations === 'number' ? lsh.numPermutations : 128;
      const bands = typeof lsh?.bands === 'number' ? lsh.bands : 32;
      if (lsh && typeof lsh === 'object' && perms % bands !== 0) {
        problems.push({ path: at(field, 'bands'), message: `numPermutations (${perms}) must be divisible by bands (${bands}); e.g. 128 permutations in 32 bands` });
      }
    }
  }
  return problems;
}

/** Each collect source is `{ path: <glob string> }` or `{ s3: ... }`: the schema's union can only say "invalid input". */
function sourceRules(sources: unknown[], at: (...p: Array<string | number>) => Array<string | number>): RuleProblem[] {
  const problems: RuleProblem[] = [];
  sources.forEach((source, i) => {
    if (typeof source === 'string') {
      problems.push({ path: at('sources', i), message: `a source is { path: <glob> } or { s3: s3://bucket/prefix }, found the bare string ${JSON.stringify(source)}; write - path: ${JSON.stringify(source)}` });
      return;
    }
    if (!source || typeof source !== 'object' || Array.isArray(source)) {
      problems.push({ path: at('sources', i), message: `a source is { path: <glob> } or { s3: s3://bucket/prefix }, found ${JSON.stringify(source)}` });
      return;
    }
    const glob = (source as { path?: unknown }).path;
    if (Array.isArray(glob)) {
      const globs = glob.map((g) => `{ path: ${JSON.stringify(String(g))} }`).join(', ');
      problems.push({ path: at('sources', i, 'path'), message: `path takes one glob, found a list of ${glob.length}; write one source per glob: sources: [${globs}]` });
    } else if (glob !== undefined && typeof glob !== 'string') {
      const fix = typeof glob === 'number' || typeof glob === 'boolean' ? `quote it, e.g. path: "${String(glob)}/*.txt"` : 'write the glob as a string, e.g. path: "data/*.txt"';
      problems.push({ path: at('sources', i, 'path'), message: `a glob must be a string, found ${JSON.stringify(glob)}; ${fix}` });
    }
  });
  return problems;
}

/**
 * An incremental collect's clock must exist on every source: file mtime only on disk, object
 * lastModified only in S3. Caught here, not first inside the collect activity at run time.
 */
function incrementalRules(stage: RawStage, at: (...p: Array<string | number>) => Array<string | number>): RuleProblem[] {
  const by = (stage.incremental as { by?: unknown } | undefined)?.by;
  if (by !== 'mtime' && by !== 'lastModified') return [];
  const sources = (stage.sources as unknown[]).filter((s): s is Record<string, unknown> => !!s && typeof s === 'object' && !Array.isArray(s));
  const s3 = sources.filter((s) => typeof s.s3 === 'string').map((s) => s.s3 as string);
  const local = sources.filter((s) => typeof s.path === 'string').map((s) => s.path as string);
  const [offending, kind, clock, fits] = by === 'mtime' ? [s3, 'S3', 'objects have no file mtime', 'lastModified'] : [local, 'local', 'lastModified is the S3 object time', 'mtime'];
  if (offending.length === 0) return [];
  const mixed = s3.length > 0 && local.length > 0;
  const listed = offending.map((s) => JSON.stringify(s)).join(', ');
  const fix = mixed
    ? `local and S3 sources share no clock: set "incremental: { by: id }" (unseen record ids)`
    : `set "incremental: { by: ${fits} }"`;
  return [{ path: at('incremental', 'by'), message: `incremental.by "${by}" does not apply to the ${kind} source${offending.length === 1 ? '' : 's'} ${listed} (${clock}); ${fix}` }];
}

const MODEL_STAGES: ReadonlySet<string> = MODEL_STAGE_TYPES;
const DATASET_STAGES = new Set(['split', 'augment', 'command', 'replay']);

/** Training stage rules: what each reference must point at, and model shapes that can be built. */
function trainingRules(stages: Record<string, RawStage>): RuleProblem[] {
  const problems: RuleProblem[] = [];
  const typeOf = (name: unknown) => (typeof name === 'string' ? (stages[name]?.type as string | undefined) : undefined);
  for (const [name, stage] of Object.entries(stages)) {
    if (!stage || typeof stage !== 'object') continue;
    const at = (...p: Array<string | number>) => ['stages', name, ...p];
    const { inputs } = referencesOf(stage);
    const expectRef = (field: string, allowed: ReadonlySet<string>, what: string) => {
      const ref = stage[field];
      const refType = typeOf(ref);
      if (typeof ref === 'string' && refType !== undefined && !allowed.has(refType)) {
        problems.push({ path: at(field), message: `"${ref}" is ${withArticle(refType)} stage; ${field} must name ${what}` });
      }
    };
    const needsOneDataset = (role: string) => {
      if (inputs.length !== 1) {
        problems.push({ path: at('input'), message: `a ${stage.type} stage reads exactly one dataset (${role}); found ${inputs.length}. Set "input: <split or augment stage>"` });
      } else if (typeOf(inputs[0]) !== undefined && !DATASET_STAGES.has(typeOf(inputs[0])!)) {
        problems.push({ path: at('input'), message: `"${inputs[0]}" is ${withArticle(typeOf(inputs[0])!)} stage; ${stage.type} reads a split (train/validation/test): name a split or augment stage` });
      }
    };
    switch (stage.type) {
      case 'tokenizer':
        if (inputs.length === 0) problems.push({ path: at('input'), message: 'a tokenizer stage trains on the train split of one or more split stages; set "input: [<split>, ...]"' });
        break;
      case 'finetune':
        needsOneDataset('its train and validation splits');
        if (stage.tokenizer === undefined && stage.from === undefined && stage.base === undefined && stage.engine !== 'torch') {
          problems.push({ path: at('tokenizer'), message: 'a fresh model needs a tokenizer: set "tokenizer: <tokenizer stage>", or "from: <finetune stage>" to continue a trained model' });
        }
        expectRef('tokenizer', new Set(['tokenizer']), 'a tokenizer stage');
        expectRef('from', MODEL_STAGES, 'a finetune or distill stage');
        break;
      case 'distill':
        needsOneDataset('the data the student learns from');
        expectRef('teacher', new Set(['finetune', 'distill']), 'a finetune stage');
        break;
      case 'evaluate':
        needsOneDataset('the split to evaluate on');
        expectRef('model', MODEL_STAGES, 'a finetune, distill or quantize stage');
        break;
      case 'quantize':
        expectRef('model', new Set(['finetune', 'distill']), 'a finetune or distill stage');
        break;
      case 'replay':
        needsOneDataset('the new train split it mixes earlier data into');
        break;
      case 'champion':
        expectRef('initial', new Set(['finetune', 'distill', 'quantize']), 'a finetune, distill or quantize stage (the model the first cycle starts from)');
        break;
      case 'promote': {
        needsOneDataset("the cycle's new test split");
        expectRef('candidate', new Set(['finetune', 'distill', 'quantize']), 'the model stage trained this cycle');
        expectRef('champion', new Set(['champion']), 'a champion stage');
        expectRef('collect', new Set(['collect']), 'the incremental collect stage');
        expectRef('replay', new Set(['replay']), 'a replay stage');
        const collect = typeof stage.collect === 'string' ? stages[stage.collect] : undefined;
        if (collect?.type === 'collect' && collect.incremental === undefined) {
          problems.push({ path: at('collect'), message: `collect stage "${String(stage.collect)}" is not incremental, so a cycle would re-read everything; give it "incremental: { by: mtime }" (or lastModified for S3, id for record ids)` });
        }
        const candidate = typeof stage.candidate === 'string' ? stages[stage.candidate] : undefined;
        if (candidate?.type === 'finetune' && typeof stage.champion === 'string' && stages[stage.champion]?.type === 'champion' && candidate.from !== stage.champion) {
          problems.push({ path: at('candidate'), message: `candidate "${String(stage.candidate)}" does not train from the champion stage "${stage.champion}", so each cycle would not build on the last; set "from: ${stage.champion}" in stage "${String(stage.candidate)}"` });
        }
        if (typeof stage.collect === 'string' && inputs.length === 1 && stages[stage.collect] && !upstreamOf(stages, inputs[0]).has(stage.collect)) {
          problems.push({ path: at('input'), message: `"${inputs[0]}" does not descend from collect stage "${stage.collect}", so its test split is not this cycle's new data; name the split stage fed by "${stage.collect}"` });
        }
        break;
      }
    }
    const shape = stage.model as { dModel?: unknown; heads?: unknown } | undefined;
    if (shape && typeof shape === 'object' && typeof shape.dModel === 'number' && typeof shape.heads === 'number' && shape.dModel % shape.heads !== 0) {
      problems.push({ path: at('model', 'heads'), message: `dModel (${shape.dModel}) must be divisible by heads (${shape.heads})` });
    }
  }
  const promotes = Object.entries(stages).filter(([, st]) => st && typeof st === 'object' && st.type === 'promote').map(([n]) => n);
  if (promotes.length > 1) {
    problems.push({ path: ['stages', promotes[1]], message: `a pipeline has one continual state, so at most one promote stage; found ${promotes.join(', ')}` });
  }
  for (const [name, stage] of Object.entries(stages)) {
    if (stage?.type !== 'replay' || promotes.some((p) => stages[p].replay === name)) continue;
    problems.push({
      path: ['stages', name],
      message: promotes.length === 0
        ? `replay stage "${name}" needs a promote stage to commit its reservoir when a cycle completes (otherwise nothing is ever replayed); add one with "replay: ${name}"`
        : `replay stage "${name}" is not named by promote stage "${promotes[0]}", so its reservoir is never committed and nothing is ever replayed; set "replay: ${name}" there`,
    });
  }
  return problems;
}

/** Every stage `name` reads from, directly or through others (itself included). */
function upstreamOf(stages: Record<string, RawStage>, name: string): Set<string> {
  const seen = new Set<string>();
  const visit = (n: string) => {
    if (seen.has(n) || !stages[n]) return;
    seen.add(n);
    for (const dep of dependenciesOf(stages[n])) visit(dep);
  };
  visit(name);
  return seen;
}

function withArticle(word: string): string {
  return `${/^[aeiou]/.test(word) ? 'an' : 'a'} ${word}`;
}
