/**
 * The web app's size as built: every file under `web/dist/assets/` and `web/dist/sw.js`, raw
 * and gzipped (level 9, what a careful server or CDN would send), with JavaScript and CSS
 * totals. Also a fingerprint of the build, so a run can tell whether `web/dist` was rebuilt
 * under it.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

/** 1 KB = 1000 bytes, as Vite prints sizes and as the goal is stated. */
export const KB = 1000;
/** The goal: all the app's JavaScript, gzipped, under this many bytes. */
export const JS_GZIP_GOAL_BYTES = 250 * KB;

/** One built file. */
export interface BundleFile {
  /** Path relative to web/dist, with forward slashes. */
  readonly path: string;
  readonly kind: 'js' | 'css' | 'other';
  readonly rawBytes: number;
  /** `gzipSync(content, { level: 9 })`, bytes. */
  readonly gzipBytes: number;
}

/** What {@link measureBundle} reports. */
export interface BundleResult {
  readonly distDir: string;
  /** When index.html was written (ISO), i.e. when the app was last built. */
  readonly builtAt: string;
  readonly files: readonly BundleFile[];
  /** Every .js file listed (the app's chunks and the service worker). */
  readonly js: { readonly rawBytes: number; readonly gzipBytes: number };
  readonly css: { readonly rawBytes: number; readonly gzipBytes: number };
  readonly goalJsGzipBytes: number;
  readonly meetsGoal: boolean;
}

function kindOf(path: string): BundleFile['kind'] {
  const ext = extname(path);
  return ext === '.js' || ext === '.mjs' ? 'js' : ext === '.css' ? 'css' : 'other';
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/** The files a run measures: the assets and the service worker, sorted by path. */
function bundlePaths(distDir: string): string[] {
  const assets = join(distDir, 'assets');
  const sw = join(distDir, 'sw.js');
  return [
    ...(existsSync(assets) ? filesUnder(assets) : []),
    ...(existsSync(sw) ? [sw] : []),
  ].sort();
}

/** Measures the built app in `distDir`; throws if it is not built. */
export function measureBundle(distDir: string): BundleResult {
  const index = join(distDir, 'index.html');
  if (!existsSync(index)) {
    throw new Error(`${index} does not exist: build the web app first (npm run build:web)`);
  }
  const files = bundlePaths(distDir).map((p): BundleFile => {
    const content = readFileSync(p);
    return {
      path: relative(distDir, p).split('\\').join('/'),
      kind: kindOf(p),
      rawBytes: content.length,
      gzipBytes: gzipSync(content, { level: 9 }).length,
    };
  });
  const total = (kind: BundleFile['kind']) => ({
    rawBytes: files.filter((f) => f.kind === kind).reduce((a, f) => a + f.rawBytes, 0),
    gzipBytes: files.filter((f) => f.kind === kind).reduce((a, f) => a + f.gzipBytes, 0),
  });
  const js = total('js');
  return {
    distDir,
    builtAt: statSync(index).mtime.toISOString(),
    files,
    js,
    css: total('css'),
    goalJsGzipBytes: JS_GZIP_GOAL_BYTES,
    meetsGoal: js.gzipBytes < JS_GZIP_GOAL_BYTES,
  };
}

/**
 * A hash of index.html and every measured file: it changes when the app is rebuilt with other
 * content (the other engineers rebuild while benches run), so the bench can flag a run whose
 * pages were not all served from the build it measured.
 */
export function buildFingerprint(distDir: string): string {
  const h = createHash('sha256');
  for (const p of [join(distDir, 'index.html'), ...bundlePaths(distDir)]) {
    h.update(relative(distDir, p));
    h.update(existsSync(p) ? readFileSync(p) : Buffer.alloc(0));
  }
  return h.digest('hex').slice(0, 16);
}
