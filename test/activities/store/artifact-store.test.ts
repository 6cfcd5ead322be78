import { artifactStoreSuite } from './artifact-store.suite';

artifactStoreSuite('file');
