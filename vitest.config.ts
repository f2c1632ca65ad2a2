import { defineConfig } from 'vitest/config';

/** What both projects share. */
const shared = {
  testTimeout: 30_000,
  hookTimeout: 30_000,
  // The PostgreSQL server of the store's second dialect: a throwaway cluster, or the server in
  // THRESHOLD_TEST_POSTGRES_URL. The store's own tests run once per dialect in either project.
  globalSetup: ['test/postgres-global-setup.ts'],
};

export default defineConfig({
  test: {
    // Integration tests start real brokers and servers on loopback; keep them from fighting
    // over two cores.
    fileParallelism: true,
    maxWorkers: 2,
    projects: [
      {
        test: {
          ...shared,
          name: 'sqlite',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
        },
      },
      {
        // The integration tests that work the store hardest, again, each server on a PostgreSQL
        // database of its own (ScenarioWorld and testDatabaseOptions in src/store/test-postgres.ts
        // honour THRESHOLD_TEST_DIALECT; the server itself never reads it): sessions,
        // deliveries, carriers, idempotency, webhooks' events, sign-in, passkeys, keypad codes,
        // push, the scenarios of test/scenarios.test.ts, a restart, and `threshold audit verify`
        // on a tampered copy (test/store-snapshot.test.ts checks the fuzzers' "a refusal changes
        // nothing" on both). The other integration tests drive the same repositories through the
        // same routes, or no database at all, and would double the suite's time (the fuzzers and
        // the courier and network scenarios pass there too, run by hand with
        // `THRESHOLD_TEST_DIALECT=postgres`); the integrity scenarios edit the SQLite file behind
        // the server's back.
        test: {
          ...shared,
          name: 'postgres',
          include: [
            'test/api-auth.test.ts',
            'test/api-bad-input.test.ts',
            'test/audit-verify-cli.test.ts',
            'test/carrier-accounts.test.ts',
            'test/carrier-deliveries.test.ts',
            'test/clip-retention.test.ts',
            'test/demo-seed.test.ts',
            'test/device-report.test.ts',
            'test/entries.test.ts',
            'test/keypad-notice.test.ts',
            'test/orchestrator-resends.test.ts',
            'test/owner-api.test.ts',
            'test/passkeys.test.ts',
            'test/pin-sync.test.ts',
            'test/pin-windows.test.ts',
            'test/push.test.ts',
            'test/restart-recovery.test.ts',
            'test/scenarios.test.ts',
            'test/sign-in-limits.test.ts',
          ],
          env: { THRESHOLD_TEST_DIALECT: 'postgres' },
        },
      },
      {
        // The scenarios and device integration tests again, on an external broker: every
        // scenario world starts a private mosquitto with the dynamic security plugin and
        // persistence, and the server writes its accounts and ACL there (ScenarioWorld honours
        // THRESHOLD_TEST_BROKER). The integrity scenarios that count the embedded broker's own
        // refusals stay on it.
        test: {
          ...shared,
          name: 'mosquitto',
          include: ['test/scenarios.test.ts', 'test/orchestrator-resends.test.ts'],
          env: { THRESHOLD_TEST_BROKER: 'mosquitto' },
        },
      },
    ],
  },
});
