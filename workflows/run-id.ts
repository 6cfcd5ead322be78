// Shared by the workflow (deterministic code: no Node built-ins here) and the CLI.

/** A scheduled run's id: `<pipeline>--<schedule>-2026-11-27T03:00:00Z` -> `<schedule>-2026-11-27T030000Z`, safe in store keys. */
export function runIdFromWorkflowId(workflowId: string): string {
  const tail = workflowId.includes('--') ? workflowId.slice(workflowId.indexOf('--') + 2) : workflowId;
  return tail.replace(/[^A-Za-z0-9._-]/g, '');
}
