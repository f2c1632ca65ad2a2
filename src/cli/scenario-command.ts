/** `threshold scenario`: run attack and fault scenarios, print reports, exit non-zero on a miss. */
import { runScenario, type ScenarioReport } from '../harness/scenario.ts';
import { findScenario, SCENARIOS } from '../harness/scenarios/index.ts';

export interface ScenarioOptions {
  readonly all?: boolean;
  readonly json?: boolean;
  readonly data?: string;
  readonly list?: boolean;
}

function table(reports: readonly ScenarioReport[]): string {
  const rows = reports.map((r) => [
    r.scenario,
    r.passed ? 'ok' : 'MISS',
    r.outcome,
    String(r.coverage),
    r.alerts.map((a) => a.type).join(',') || '-',
    typeof r.detectionMs === 'number' ? `${r.detectionMs} ms` : '-',
    r.auditVerified ? 'yes' : 'NO',
  ]);
  const head = ['scenario', 'result', 'outcome', 'coverage', 'alerts', 'detection', 'audit'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export async function scenarioCommand(
  name: string | undefined,
  opts: ScenarioOptions,
): Promise<void> {
  if (opts.list) {
    for (const s of SCENARIOS)
      console.log(
        `${s.name.padEnd(Math.max(...SCENARIOS.map((x) => x.name.length)))} ${s.expected}`,
      );
    return;
  }
  const chosen = opts.all ? SCENARIOS : name ? [findScenario(name)] : [];
  if (chosen.length === 0 || chosen.some((s) => s === undefined)) {
    console.error(
      `threshold scenario: ${name ? `unknown scenario "${name}"` : 'name a scenario or use --all'}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`,
    );
    process.exit(2);
  }
  const reports: ScenarioReport[] = [];
  for (const s of chosen) {
    if (!s) continue;
    reports.push(await runScenario(s, opts.data && !opts.all ? { dataDir: opts.data } : {}));
  }
  if (opts.json) {
    console.log(JSON.stringify(opts.all ? reports : reports[0], null, 2));
  } else {
    console.log(table(reports));
    for (const r of reports.filter((x) => !x.passed)) {
      console.log(`\n${r.scenario} missed:\n${r.failures.map((f) => `  - ${f}`).join('\n')}`);
    }
  }
  process.exit(reports.every((r) => r.passed) ? 0 : 1);
}
