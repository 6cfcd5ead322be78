/** Two projects: unit tests of pure code (no servers), and integration tests, for which
 * globalSetup starts a real Temporal dev server and a real MinIO (built from their Go modules on
 * first use). Jest runs a project's globalSetup only when one of its tests is selected. */
/** Sources, and the ES-module-only dependencies, compiled to CommonJS (jest's CommonJS registry cannot load ES modules as they are). */
const esmOnly = ['entities'];
const swc = ['@swc/jest', { jsc: { target: 'es2022' } }];
const transform = { '^.+\\.ts$': swc, [`/node_modules/(?:${esmOnly.join('|')})/.+\\.js$`]: swc };
const transformIgnorePatterns = [`/node_modules/(?!(?:${esmOnly.join('|')})/)`];
const integration = ['<rootDir>/test/integration/**/*.test.ts', '<rootDir>/test/**/*.s3.test.ts'];
module.exports = {
  testTimeout: 120000,
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      transform,
      transformIgnorePatterns,
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', '/test/integration/', '\\.s3\\.test\\.ts$'],
    },
    {
      displayName: 'integration',
      testEnvironment: 'node',
      transform,
      transformIgnorePatterns,
      testMatch: integration,
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
    },
  ],
};
