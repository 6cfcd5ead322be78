// Needs the MinIO that the integration project's globalSetup starts.
import { artifactStoreSuite } from './artifact-store.suite';

artifactStoreSuite('s3');
