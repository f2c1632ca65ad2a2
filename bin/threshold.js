#!/usr/bin/env node
// Entry point of the `threshold` command. The sources are TypeScript; tsx compiles them on
// load (cached), so a checkout works right after `npm install` with no build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
