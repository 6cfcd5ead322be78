// `tempered report <run>`: a self-contained HTML report of a run, with its charts.
export { defaultReportDir, ReportPathError, writeRunReport, type RunReportFiles } from './report';
export { openReport } from './open-report';
export { buildReportModel, computeLifts, type Lift, type ReportModel } from './report-model';
export { buildCharts, type ChartSpec } from './charts';
