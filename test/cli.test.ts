/** The `threshold` command as a user runs it: a child process, its output and exit code. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = join(import.meta.dirname, '..', 'bin', 'threshold.js');

function threshold(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('threshold CLI', () => {
  it('prints help for every command', () => {
    for (const cmd of [
      [],
      ['serve'],
      ['demo'],
      ['sim'],
      ['scenario'],
      ['audit', 'verify'],
      ['carrier', 'add'],
    ]) {
      const r = threshold(...cmd, '--help');
      expect(r.code, `threshold ${cmd.join(' ')} --help`).toBe(0);
      expect(r.stdout).toMatch(/Usage: threshold/);
    }
    // Seven CLI starts one after another: generous for a loaded machine.
  }, 120_000);

  it('refuses an unknown scenario with exit code 2 and names the known ones', () => {
    const r = threshold('scenario', 'no-such-thing');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown scenario "no-such-thing"');
    expect(r.stderr).toContain('deauth');
  });

  it('runs a scenario with --json, keeps its data under --data, and the audit log there verifies', () => {
    const dir = mkdtempSync(join(tmpdir(), 'threshold-cli-'));
    try {
      const r = threshold('scenario', 'delivery', '--json', '--data', dir);
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      const report = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(report).toMatchObject({
        scenario: 'delivery',
        outcome: 'completed',
        coverage: 1,
        alerts: [],
        auditVerified: true,
      });
      expect(report).toHaveProperty('gaps');
      const v = threshold('audit', 'verify', '--data', dir);
      expect(v.code, v.stderr).toBe(0);
      expect(v.stdout).toMatch(/^audit log intact: \d+ entries/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('audit verify on a directory without a database exits 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'threshold-cli-'));
    try {
      const r = threshold('audit', 'verify', '--data', dir);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('no database');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
