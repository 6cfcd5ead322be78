// Needs the MinIO that the integration project's globalSetup starts.
import { jsonlSuite } from './jsonl.suite';

jsonlSuite('s3');
