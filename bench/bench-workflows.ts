// Bundle of the benchmark: Tempered's pipeline workflow beside the bare baseline, on one worker.
export { pipelineWorkflow } from '../workflows/pipeline';
export { bareWorkflow } from './bare-workflow';
