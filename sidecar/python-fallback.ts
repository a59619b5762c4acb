/**
 * `--python-fallback`: a Python test imports from the slave what its image lacks. The slave's
 * `python3` is asked once for its sys.path; each entry is mapped to where the test sees it
 * through the mount, and written, with our sitecustomize.py (python/sitecustomize.py, which does
 * the importing), into a directory the test's PYTHONPATH starts with.
 */
import { copyFile, mkdir, rename, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProcessClient } from './remote-process.js';

/** Copied next to the compiled code by `npm run build`. */
export const SITECUSTOMIZE = fileURLToPath(new URL('./python/sitecustomize.py', import.meta.url));

export class PythonFallbackError extends Error {
  override name = 'PythonFallbackError';
}

/** The slave's python3's sys.path: absolute entries only (not its working directory). */
export async function slavePythonPath(procs: ProcessClient): Promise<string[]> {
  const { out, err, status } = await procs.capture(['python3', '-c', 'import json, sys; print(json.dumps(sys.path))']);
  if (status.code !== 0) throw new PythonFallbackError(`the slave's python3 did not say its sys.path (${status.code ?? status.signal}): ${err.trim()}`);
  let paths: unknown;
  try {
    paths = JSON.parse(out);
  } catch {
    throw new PythonFallbackError(`the slave's python3 said something that is not its sys.path: ${out.slice(0, 200)}`);
  }
  if (!Array.isArray(paths)) throw new PythonFallbackError('the slave\'s sys.path is not a list');
  return paths.filter((p): p is string => typeof p === 'string' && p.startsWith('/'));
}

/**
 * Writes the hook into `dir`: sitecustomize.py, and slave-path.json with each slave path as the
 * test sees it: the agent exports `exportRoot` (its hello's root), shown at `slaveSeenAt`; what
 * is outside the export cannot be seen, and is left out. Atomic per file, so a test starting
 * meanwhile sees one or the other.
 */
export async function writePythonFallback(
  dir: string, slaveSeenAt: string, exportRoot: string, slavePaths: string[], source = SITECUSTOMIZE,
): Promise<[string, string][]> {
  await mkdir(dir, { recursive: true });
  const entries: [string, string][] = [];
  for (const p of slavePaths) {
    const inside = posix.relative(exportRoot, p);
    if (inside.startsWith('..') || posix.isAbsolute(inside)) continue;
    entries.push([posix.join(slaveSeenAt, inside), p]);
  }
  const json = join(dir, '.slave-path.json.new');
  await writeFile(json, `${JSON.stringify({ paths: entries }, null, 1)}\n`);
  await rename(json, join(dir, 'slave-path.json'));
  const staged = join(dir, '.sitecustomize.py.new');
  await copyFile(source, staged);
  await rename(staged, join(dir, 'sitecustomize.py'));
  return entries;
}
