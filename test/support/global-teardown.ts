import { down, wipeState } from '../../infra/servers';

/** Stops the servers globalSetup started and removes their state. */
export default async function globalTeardown(): Promise<void> {
  const stateDir = process.env.TEMPERED_TEST_STATE_DIR;
  if (!stateDir) return;
  await down({ stateDir });
  await wipeState(stateDir);
}
