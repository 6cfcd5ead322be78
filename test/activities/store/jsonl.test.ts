import { jsonlSuite } from './jsonl.suite';

jsonlSuite('file');
