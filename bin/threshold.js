#!/usr/bin/env node
// Entry point of the `threshold` command. The sources are TypeScript; tsx compiles them on
// load (cached), so a checkout works right after `npm install` with no build step.
//
// Every command runs the JavaScript compiled into dist/ by `node bin/build-server.js` instead,
// when that build was made from the sources as they are now (their fingerprint matches):
// without tsx's loader thread and the source maps it keeps, `threshold serve` starts about
// 50 MB smaller, and a short command such as `threshold audit verify` starts in a fraction of
// the time (no loader to start, nothing to compile or look up in tsx's cache). With no build,
// or a stale one, the command runs from the sources, as it would with no build at all.
// THRESHOLD_FROM_SOURCE=1 forces the sources.
import { buildIsCurrent } from './source-fingerprint.js';

if (process.env.THRESHOLD_FROM_SOURCE !== '1' && buildIsCurrent()) {
  await import('../dist/cli/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
