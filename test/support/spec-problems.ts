import { SpecValidationError } from '../../pipelines/errors';
import { loadSpecText } from '../../pipelines/load';

/** The problems a spec is refused with; fails the test if it is accepted. */
export function problemsOf(yaml: string): SpecValidationError['problems'] {
  try {
    loadSpecText(yaml, 'spec.yaml');
  } catch (err) {
    if (err instanceof SpecValidationError) return err.problems;
    throw err;
  }
  throw new Error('expected the spec to be rejected');
}
