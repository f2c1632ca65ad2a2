/** Steps several scenarios share, each with its expectations. */
import type { Expectations } from '../scenario.ts';
import type { ScenarioWorld } from '../scenario-world.ts';

/**
 * The courier comes back and asks to open again: it must be refused, and the door must stay
 * locked. Returns the answer's status and code for the report.
 */
export async function reopenIsRefused(
  world: ScenarioWorld,
  expect: Expectations,
  deliveryId: string,
): Promise<{ status: number; code: string | null }> {
  const again = await world.requestAccess(deliveryId);
  const code = (again.body.error as { code?: string } | undefined)?.code ?? null;
  expect.that(
    again.status >= 400 && again.status < 500,
    `the second "open" is refused (HTTP ${again.status} ${code})`,
  );
  expect.that(world.home.lock.bolt() === 'locked', 'the door stays locked');
  return { status: again.status, code };
}
