import type { z } from 'zod';
import { PipelineSpecSchema, STAGE_SCHEMAS, type StageType } from './schema';

// Finds the keys a spec may hold at a path, so an unknown key can be answered with the closest valid one.

type AnySchema = z.core.$ZodType;

function defOf(schema: AnySchema): Record<string, unknown> {
  return (schema as unknown as { _zod: { def: Record<string, unknown> } })._zod.def;
}

function objectsIn(schema: AnySchema): Array<Record<string, AnySchema>> {
  const def = defOf(schema);
  switch (def.type) {
    case 'object':
      return [def.shape as Record<string, AnySchema>];
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
      return objectsIn(def.innerType as AnySchema);
    case 'pipe': {
      // A transform's input (z.preprocess puts its function first) has no keys: use its output then.
      const before = objectsIn(def.in as AnySchema);
      return before.length > 0 ? before : objectsIn(def.out as AnySchema);
    }
    case 'union':
      return (def.options as AnySchema[]).flatMap(objectsIn);
    default:
      return [];
  }
}

function childOf(schema: AnySchema, segment: string | number): AnySchema | undefined {
  const def = defOf(schema);
  switch (def.type) {
    case 'record':
      return def.valueType as AnySchema;
    case 'array':
      return def.element as AnySchema;
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
      return childOf(def.innerType as AnySchema, segment);
    case 'pipe':
      return childOf(def.in as AnySchema, segment) ?? childOf(def.out as AnySchema, segment);
    default:
      for (const shape of objectsIn(schema)) if (typeof segment === 'string' && shape[segment]) return shape[segment];
      return undefined;
  }
}

/** Keys allowed at `path` of `raw` (the parsed YAML), or [] when the path is not an object. */
export function allowedKeysAt(path: ReadonlyArray<string | number>, raw: unknown): string[] {
  let schema: AnySchema | undefined = PipelineSpecSchema;
  let value: unknown = raw;
  for (let i = 0; i < path.length && schema; i++) {
    const segment = path[i];
    value = value && typeof value === 'object' ? (value as Record<string | number, unknown>)[segment] : undefined;
    if (i === 1 && path[0] === 'stages') {
      const type = (value as { type?: string } | undefined)?.type;
      schema = type && type in STAGE_SCHEMAS ? STAGE_SCHEMAS[type as StageType] : undefined;
    } else {
      schema = childOf(schema, segment);
    }
  }
  return schema ? [...new Set(objectsIn(schema).flatMap((shape) => Object.keys(shape)))] : [];
}
