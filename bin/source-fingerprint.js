// The fingerprint of the TypeScript sources, shared by bin/build-server.js (which records it
// beside its output) and bin/threshold.js (which runs that output only while it still matches).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root directory. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Where the sources are. */
export const SOURCE_DIR = join(ROOT, 'src');
/**
 * Where bin/build-server.js writes them compiled: one level below the root, as src/ is, so
 * that paths a module finds from its own location (`new URL('../../../web/dist/',
 * import.meta.url)`) lead to the same files from both.
 */
export const BUILD_DIR = join(ROOT, 'dist');
/** The fingerprint of the sources a build was made from; written last, once the build is whole. */
export const BUILD_FINGERPRINT_FILE = join(BUILD_DIR, '.source-fingerprint');

/**
 * A digest of every file under src/: its path, size and modification time. Any edit, checkout
 * or added or removed file changes it, so a build made before is not run. Reading the metadata
 * of a few hundred files takes a few milliseconds.
 *
 * @returns {string}
 */
export function sourceFingerprint() {
  const hash = createHash('sha256');
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    )) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(path);
      } else {
        const { size, mtimeMs } = statSync(path);
        hash.update(`${relative(SOURCE_DIR, path)}\0${size}\0${mtimeMs}\n`);
      }
    }
  };
  walk(SOURCE_DIR);
  return hash.digest('hex');
}

/**
 * Whether dist/ holds a complete build of the sources as they are now.
 *
 * @returns {boolean}
 */
export function buildIsCurrent() {
  let recorded;
  try {
    recorded = readFileSync(BUILD_FINGERPRINT_FILE, 'utf8').trim();
  } catch {
    return false;
  }
  return recorded === sourceFingerprint();
}

/**
 * Whether bin/build-server.js compiles the file at `path`: TypeScript, tests left out.
 *
 * @param {string} path
 * @returns {boolean}
 */
export function isBuildSource(path) {
  return path.endsWith('.ts') && !path.endsWith('.test.ts') && !path.endsWith('.d.ts');
}

/**
 * Every file under `dir`, recursively.
 *
 * @param {string} dir
 * @returns {string[]}
 */
export function listFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? listFiles(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}
