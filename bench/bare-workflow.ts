import { proxyActivities } from '@temporalio/workflow';

// The baseline for the orchestration benchmark: a plain Temporal workflow calling no-op activities
// in sequence, with nothing of Tempered around it.

const { bareNoop } = proxyActivities<{ bareNoop(i: number): Promise<number> }>({
  startToCloseTimeout: '1m',
  heartbeatTimeout: '1m',
});

export async function bareWorkflow(count: number): Promise<number> {
  let sum = 0;
  for (let i = 0; i < count; i++) sum += await bareNoop(i);
  return sum;
}
