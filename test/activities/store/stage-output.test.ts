import { stageOutputSuite } from './stage-output.suite';

stageOutputSuite('file');
