/** Every scenario, by name, in the order `threshold scenario --all` runs them. */
import type { Scenario } from '../scenario.ts';
import { deauth } from './deauth.ts';
import { delivery } from './delivery.ts';
import { freeze } from './freeze.ts';
import { relockJam } from './relock-jam.ts';
import { replay } from './replay.ts';

export const SCENARIOS: readonly Scenario[] = [delivery, deauth, freeze, relockJam, replay];

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
