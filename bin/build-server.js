#!/usr/bin/env node
// Compiles src/ to plain JavaScript in dist/ (node bin/build-server.js), for bin/threshold.js to
// run every command without compiling TypeScript as it loads. tsx's loader is a thread of its
// own with its own V8 heap and keeps every module's source map: `threshold serve` starts about
// 50 MB smaller without it (measured: 151–156 MB resident against 204–215 MB), and a short
// command such as `threshold audit verify` starts without waiting for it. Each file is compiled
// alone, types are not checked (as with tsx: `npm run check` does that), and relative `.ts`
// specifiers are pointed at the `.js` files: those of imports, and those of files a module
// finds from its own location (`new URL('../camera-child.ts', import.meta.url)`, a script run
// as a child process). dist/ sits where src/ does, one level below the root, so every other
// path a module finds from its own location (package.json, web/dist/) leads to the same file
// from both. The sources' fingerprint is written last, so a build that stopped half-way, or
// one older than the sources, is never run (bin/threshold.js).
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import {
  BUILD_DIR,
  BUILD_FINGERPRINT_FILE,
  ROOT,
  SOURCE_DIR,
  isBuildSource,
  listFiles,
  sourceFingerprint,
} from './source-fingerprint.js';

// tsx's own esbuild, so the build compiles exactly as tsx does at load.
const esbuild = createRequire(import.meta.resolve('tsx'))('esbuild');

/** Relative `.ts` specifiers in static imports, re-exports and `import()`, as esbuild prints them. */
const TS_SPECIFIER = /((?:\bfrom|\bimport)\s*\(?\s*)"(\.\.?\/[^"]*)\.ts"/g;
/** Relative `.ts` files found from a module's own location: `new URL("./x.ts", import.meta.url)`. */
const TS_URL = /(\bnew URL\(\s*)"(\.\.?\/[^"]*)\.ts"(\s*,\s*import\.meta\.url\s*\))/g;

const fingerprint = sourceFingerprint();
// Written aside (in node_modules/.cache, on the same file system and ignored by git and the
// linters) and swapped in whole, so a command starting meanwhile finds the old build or the
// new one, not half of one.
const staging = join(ROOT, 'node_modules', '.cache', `threshold-build-${process.pid}`);
rmSync(staging, { recursive: true, force: true });
let files = 0;
try {
  for (const path of listFiles(SOURCE_DIR).filter(isBuildSource)) {
    const { code } = esbuild.transformSync(readFileSync(path, 'utf8'), {
      loader: 'ts',
      format: 'esm',
      target: 'node20',
      sourcefile: path,
      tsconfigRaw: {
        compilerOptions: { verbatimModuleSyntax: true, useDefineForClassFields: true },
      },
    });
    const out = join(staging, relative(SOURCE_DIR, path)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, code.replace(TS_SPECIFIER, '$1"$2.js"').replace(TS_URL, '$1"$2.js"$3'));
    files += 1;
  }
  writeFileSync(join(staging, relative(BUILD_DIR, BUILD_FINGERPRINT_FILE)), `${fingerprint}\n`);
  const old = `${staging}-old`;
  rmSync(old, { recursive: true, force: true });
  try {
    renameSync(BUILD_DIR, old);
  } catch {
    // No build yet.
  }
  renameSync(staging, BUILD_DIR);
  rmSync(old, { recursive: true, force: true });
} catch (error) {
  rmSync(staging, { recursive: true, force: true });
  throw error;
}
console.log(`compiled ${files} files of src/ into ${relative(process.cwd(), BUILD_DIR) || '.'}/`);
