/**
 * The globs of a job's `artifacts` (Node 20's fs.glob is not stable): `*` matches any characters
 * but `/`, `?` one character but `/`, and a whole `**` segment any number of directories (also
 * none). Everything else matches itself. Paths are POSIX, relative to the workspace, without `./`.
 *
 * Hand-written, not picomatch: even with its extensions switched off, picomatch still reads `(…)`,
 * `{1,3}` and `\` as regex or escape syntax, so `report(1).txt` would not match itself.
 */

const GLOB_CHARS = /[*?]/;

export function hasGlob(pattern: string): boolean {
  return GLOB_CHARS.test(pattern);
}

/** `./a//b/` → `a/b`; a leading `/` is kept (absolute patterns are resolved by the driver). */
export function normalizePattern(pattern: string): string {
  const absolute = pattern.startsWith('/');
  const segments = pattern.split('/').filter((s) => s !== '' && s !== '.');
  return `${absolute ? '/' : ''}${segments.join('/')}`;
}

const escapeRegExp = (text: string) => text.replace(/[.+^${}()|[\]\\]/g, '\\$&');

function segmentSource(segment: string): string {
  let out = '';
  for (const ch of segment) {
    if (ch === '*') out += '[^/]*';
    else if (ch === '?') out += '[^/]';
    else out += escapeRegExp(ch);
  }
  return out;
}

/** A RegExp matching exactly the paths `pattern` names. */
export function globToRegExp(pattern: string): RegExp {
  const segments = normalizePattern(pattern).split('/');
  let source = '';
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === '**') {
      // Zero or more whole directories; as the last segment, anything below.
      source += last ? '.*' : '(?:[^/]+/)*';
      return;
    }
    source += segmentSource(segment) + (last ? '' : '/');
  });
  return new RegExp(`^${source}$`);
}

/**
 * The directory a pattern's matches all lie in: its segments before the first one with a glob
 * (`dist/*.tgz` → `dist`, `**\/x` → ``, `a/b.txt` → `a/b.txt` itself).
 */
export function staticPrefix(pattern: string): string {
  const normalized = normalizePattern(pattern);
  const absolute = normalized.startsWith('/');
  const segments = normalized.split('/').filter(Boolean);
  const firstGlob = segments.findIndex((segment) => hasGlob(segment));
  const kept = firstGlob < 0 ? segments : segments.slice(0, firstGlob);
  return `${absolute ? '/' : ''}${kept.join('/')}`;
}

/**
 * The name a matched file is stored as. Without a glob in `src`, the artifact's name. With one,
 * the file's base name when no name was given (the default name is the glob's own base name), or
 * the given name with each `*` replaced by the file's base name (`bin/* => linux-*`).
 */
export function artifactName(spec: { src: string; name: string }, matchedPath: string): string {
  const base = matchedPath.slice(matchedPath.lastIndexOf('/') + 1);
  if (!hasGlob(spec.src)) return spec.name;
  const defaultName = normalizePattern(spec.src).split('/').pop() ?? '';
  if (spec.name === defaultName) return base;
  return spec.name.includes('*') ? spec.name.replace(/\*+/g, base) : spec.name;
}
