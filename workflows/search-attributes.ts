import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

// Search attributes Tempered sets on its runs, so they can be found in the Temporal UI and by
// `tempered list --pipeline`. The status filter uses Temporal's own `ExecutionStatus`, which is
// also right for runs that were terminated (a workflow cannot record its own termination).

/** The pipeline a run belongs to. */
export const PIPELINE_ATTRIBUTE = defineSearchAttributeKey('TemperedPipeline', SearchAttributeType.KEYWORD);

/** The run id (the workflow id's suffix), for exact lookups without a prefix scan. */
export const RUN_ID_ATTRIBUTE = defineSearchAttributeKey('TemperedRunId', SearchAttributeType.KEYWORD);

/** Every custom attribute, as `temporal server start-dev --search-attribute` and the operator API name them. */
export const SEARCH_ATTRIBUTES = [PIPELINE_ATTRIBUTE, RUN_ID_ATTRIBUTE] as const;
