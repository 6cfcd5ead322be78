// Everything a worker registers as workflows. Deterministic code only: no Node built-ins, no I/O.
export { pipelineWorkflow } from './pipeline';
