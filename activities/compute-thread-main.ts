// The body of a compute thread (see compute-thread.ts): opens the store, runs one stage attempt's
// implementation, and reports progress, the result or the error to the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { CancelledFailure } from '@temporalio/common';
import { serializeError, type ComputeThreadCommand, type ComputeThreadData, type ComputeThreadMessage } from './compute-thread';
import { loadStageImplementation } from './stage-implementations';
import { isNonRetryable } from './stage-runner';
import { createStore } from './store';

async function main(port: NonNullable<typeof parentPort>, data: ComputeThreadData): Promise<void> {
  const send = (message: ComputeThreadMessage) => port.postMessage(message);
  const cancelled = new AbortController();
  port.on('message', (command: ComputeThreadCommand) => {
    if (command.kind === 'cancel') cancelled.abort();
  });
  const store = createStore(data.store);
  try {
    const implementation = loadStageImplementation(data.type);
    const { outputs, metrics } = await implementation({
      input: data.input,
      store,
      signal: cancelled.signal,
      attempt: data.attempt,
      resumeDetails: data.resumeDetails,
      progress(details) {
        if (cancelled.signal.aborted) throw new CancelledFailure('stage cancelled');
        send({ kind: 'progress', details });
      },
      outputKey: (name) => `${data.input.outputPrefix}${name}`,
      devices: data.devices,
    });
    if (cancelled.signal.aborted) throw new CancelledFailure('stage cancelled');
    send({ kind: 'done', outputs, metrics });
  } catch (err) {
    send({ kind: 'failed', error: serializeError(err, isNonRetryable(err)) });
  } finally {
    await store.close().catch(() => undefined);
    port.close();
  }
}

if (parentPort) void main(parentPort, workerData as ComputeThreadData);
