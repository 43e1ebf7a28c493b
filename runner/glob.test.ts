import { describe, expect, it } from 'vitest';
import { artifactName, globToRegExp, staticPrefix } from './glob.ts';

describe('artifact globs', () => {
  it('match * and ? within one path segment and ** across directories', () => {
    const paths = ['app', 'a.txt', 'dist/app.tgz', 'dist/x/app.tgz', 'b.txt', 'ab.txt', 'logs/1/2/run.log'];
    const matching = (pattern: string) => paths.filter((p) => globToRegExp(pattern).test(p));
    expect(matching('*.txt')).toEqual(['a.txt', 'b.txt', 'ab.txt']);
    expect(matching('?.txt')).toEqual(['a.txt', 'b.txt']);
    expect(matching('dist/*.tgz')).toEqual(['dist/app.tgz']);
    expect(matching('dist/**/*.tgz')).toEqual(['dist/app.tgz', 'dist/x/app.tgz']);
    expect(matching('**/app.tgz')).toEqual(['dist/app.tgz', 'dist/x/app.tgz']);
    expect(matching('logs/**')).toEqual(['logs/1/2/run.log']);
    expect(matching('./dist//app.tgz')).toEqual(['dist/app.tgz']);
    expect(globToRegExp('a+b(1).txt').test('a+b(1).txt')).toBe(true);
    expect(globToRegExp('a+b(1).txt').test('aab(1)xtxt')).toBe(false);
    for (const name of ['[ab].txt', '{a,b}.txt', 'a{1,3}', '!x', '@(x)', 'a\\b', '$x^', '.env']) {
      expect(globToRegExp(name).test(name)).toBe(true);
    }
    expect(globToRegExp('[ab].txt').test('a.txt')).toBe(false);
    expect(globToRegExp('a{1,3}').test('aaa')).toBe(false);
  });

  it('start looking in the directory before the first glob', () => {
    expect(staticPrefix('dist/*.tgz')).toBe('dist');
    expect(staticPrefix('**/x')).toBe('');
    expect(staticPrefix('a/b.txt')).toBe('a/b.txt');
    expect(staticPrefix('/src/out/**')).toBe('/src/out');
  });

  it("name each match after the manifest's name, or its own base name for a glob without one", () => {
    expect(artifactName({ src: 'bin/app', name: 'app-linux' }, 'bin/app')).toBe('app-linux');
    expect(artifactName({ src: 'dist/*.tgz', name: '*.tgz' }, 'dist/a.tgz')).toBe('a.tgz');
    expect(artifactName({ src: 'bin/*', name: 'linux-*' }, 'bin/tool')).toBe('linux-tool');
    expect(artifactName({ src: 'bin/*', name: 'fixed' }, 'bin/tool')).toBe('fixed');
  });
});
