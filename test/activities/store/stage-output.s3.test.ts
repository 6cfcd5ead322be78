// Needs the MinIO that the integration project's globalSetup starts.
import { stageOutputSuite } from './stage-output.suite';

stageOutputSuite('s3');
