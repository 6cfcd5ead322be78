/** `TEMPERED_TASK_QUEUE_PREFIX`: lets several deployments (or tests) share one namespace. Default ''. */
export function queuePrefixFromEnv(): string {
  return process.env.TEMPERED_TASK_QUEUE_PREFIX ?? '';
}
