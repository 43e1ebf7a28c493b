/**
 * The console's build: `vite build web` writes web/dist, which `kiln serve` serves next to the API;
 * `vite web` is the dev server, proxying /graphql (HTTP and WebSocket), the badges and the CCTray feed
 * to a `kiln serve` on :8080.
 */
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { defineConfig, type Plugin } from 'vite';
import solid from 'vite-plugin-solid';

const ROOT = path.dirname(new URL(import.meta.url).pathname);
/** The builds page's initial JavaScript must stay under this, gzipped (issue: web console). */
const INITIAL_JS_BUDGET_KB = 150;

/**
 * Prints the gzipped size of the JavaScript a first visit loads (the entry chunk and everything it
 * imports statically; lazy routes excluded) and fails the build past the budget.
 */
export function initialJsBudget(budgetKb = INITIAL_JS_BUDGET_KB): Plugin {
  return {
    name: 'kiln:initial-js-budget',
    apply: 'build',
    generateBundle(_options, bundle) {
      const seen = new Set<string>();
      const visit = (file: string) => {
        const chunk = bundle[file];
        if (seen.has(file) || !chunk || chunk.type !== 'chunk') return;
        seen.add(file);
        for (const imported of chunk.imports) visit(imported);
      };
      for (const [file, chunk] of Object.entries(bundle)) {
        if (chunk.type === 'chunk' && chunk.isEntry) visit(file);
      }
      let bytes = 0;
      for (const file of seen) {
        const chunk = bundle[file];
        if (chunk?.type === 'chunk') bytes += gzipSync(chunk.code, { level: 9 }).length;
      }
      const kb = bytes / 1024;
      console.log(`initial JS (gzip): ${kb.toFixed(1)} KB (${seen.size} files; budget ${budgetKb} KB)`);
      if (kb > budgetKb)
        this.error(`initial JS is ${kb.toFixed(1)} KB gzipped, over the ${budgetKb} KB budget`);
    },
  };
}

export default defineConfig({
  root: ROOT,
  plugins: [solid(), initialJsBudget()],
  build: {
    outDir: path.join(ROOT, 'dist'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    // A loaded machine makes any plugin "slow": the timing warnings are noise at every `npm start`.
    rolldownOptions: { checks: { bundlerTimings: false } },
  },
  server: {
    port: 5173,
    proxy: {
      '/graphql': { target: 'http://127.0.0.1:8080', ws: true, changeOrigin: true },
      '/healthz': 'http://127.0.0.1:8080',
      '/badges': 'http://127.0.0.1:8080',
      '/cctray.xml': 'http://127.0.0.1:8080',
    },
  },
});
